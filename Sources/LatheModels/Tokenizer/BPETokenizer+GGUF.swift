// Building a tokenizer from the `tokenizer.*` metadata of a GGUF file.

extension BPETokenizer {
  /// The tokenizer a GGUF file carries: `tokenizer.ggml.tokens`, `merges`, `token_type`, `pre`, `bos_token_id`,
  /// `eos_token_id`, `unknown_token_id`, `add_bos_token` (false when absent) and `tokenizer.chat_template`.
  /// Only byte-level BPE vocabularies (`tokenizer.ggml.model = gpt2`) are read; a chat template other than ChatML
  /// is left out, and `chatPrompt` then writes plain ChatML.
  ///
  ///     let tokenizer = try BPETokenizer(gguf: GGUFFile(path: "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
  public convenience init(gguf: GGUFFile) throws {
    let metadata = gguf.metadata
    func fail(_ key: String, _ reason: String) -> TokenizerError { .invalid(field: key, reason: reason) }
    func optionalInt(_ key: String) throws -> Int? {
      guard let value = metadata[key] else { return nil }
      guard let int = value.int else { throw fail(key, "is not an integer") }
      return int
    }
    guard let model = metadata["tokenizer.ggml.model"] else { throw fail("tokenizer.ggml.model", "is missing") }
    guard model.string == "gpt2" else {
      throw fail("tokenizer.ggml.model", "\(model) is not a byte-level BPE vocabulary ('gpt2')")
    }
    guard let tokens = metadata["tokenizer.ggml.tokens"] else { throw fail("tokenizer.ggml.tokens", "is missing") }
    guard let tokenTexts = tokens.strings else { throw fail("tokenizer.ggml.tokens", "is not an array of strings") }
    guard let merges = metadata["tokenizer.ggml.merges"] else { throw fail("tokenizer.ggml.merges", "is missing") }
    guard let mergeLines = merges.strings else { throw fail("tokenizer.ggml.merges", "is not an array of strings") }
    var types: [Int] = []
    if let value = metadata["tokenizer.ggml.token_type"] {
      guard let ints = value.ints else { throw fail("tokenizer.ggml.token_type", "is not an array of integers") }
      types = ints
    }
    var pre = ""
    if let value = metadata["tokenizer.ggml.pre"] {
      guard let string = value.string else { throw fail("tokenizer.ggml.pre", "is not a string") }
      pre = string
    }
    var addBOS = false
    if let value = metadata["tokenizer.ggml.add_bos_token"] {
      guard let bool = value.bool else { throw fail("tokenizer.ggml.add_bos_token", "is not a bool") }
      addBOS = bool
    }
    let template = metadata["tokenizer.chat_template"]?.string.flatMap { try? ChatTemplate($0) }
    try self.init(tokens: tokenTexts, merges: mergeLines, tokenTypes: types, preTokenizer: pre,
                  bos: optionalInt("tokenizer.ggml.bos_token_id"), eos: optionalInt("tokenizer.ggml.eos_token_id"),
                  unknown: optionalInt("tokenizer.ggml.unknown_token_id"), addBOS: addBOS, template: template)
  }
}
