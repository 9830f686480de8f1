// A byte-level BPE tokenizer (GPT-2 family, GGUF `tokenizer.ggml.model = gpt2`), giving llama.cpp's token ids.

import Foundation

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
  /// A vocabulary input is malformed; `field` is its GGUF key, with an index where there is one.
  case invalid(field: String, reason: String)
  /// A token id outside `0..<vocabularySize`.
  case unknownID(Int, vocabularySize: Int)

  public var description: String {
    switch self {
    case .invalid(let field, let reason): return "\(field): \(reason)"
    case .unknownID(let id, let size): return "token id \(id) is not in the vocabulary (0..<\(size))"
    }
  }
}

/// Text ↔ token ids for a byte-level BPE vocabulary, matching llama.cpp's tokenizer on the same GGUF data.
///
///     let tokenizer = try BPETokenizer(tokens: ..., merges: ..., tokenTypes: ..., preTokenizer: "smollm",
///                                      bos: 1, eos: 2, unknown: 0, addBOS: false)
///     let ids = tokenizer.encode("The quick brown fox")       // [504, 2365, 6354, 16438]
///     try tokenizer.decode(ids) == "The quick brown fox"
///
/// Encoding: special-token texts are cut out first (longest first), each piece between them is cut into words by
/// the pre-tokenizer, and each word's UTF-8 bytes are merged pairwise by merge rank (lowest first, leftmost on a
/// tie). Safe to share between threads.
public final class BPETokenizer: Sendable {
  /// GGUF `tokenizer.ggml.token_type` values.
  public enum TokenType: Int, Sendable {
    case undefined = 0, normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
  }

  /// The vocabulary strings, in the byte-level alphabet (`Ġ` for a space).
  public let tokens: [String]
  public let tokenTypes: [TokenType]
  public let preTokenizer: PreTokenizer
  public let bos: Int?, eos: Int?, unknown: Int?
  /// Whether `encode` starts with `bos` when its caller does not say.
  public let addBOS: Bool
  /// The chat template, when the vocabulary came with one this renderer understands.
  public let chatTemplate: ChatTemplate?

  let idsByText: [String: Int32]
  /// Merge table: key `left << 32 | right`, value `rank << 32 | merged id`.
  let merges: [UInt64: UInt64]
  /// The token of each single byte (its byte-level scalar), or -1 when the vocabulary lacks it.
  let byteTokens: [Int32]
  /// Special tokens cut out before pre-tokenization, longest text first.
  let specials: [SpecialToken]
  /// What each token decodes to: `decodedBytes[decodedStarts[id]..<decodedStarts[id + 1]]`.
  let decodedBytes: [UInt8]
  let decodedStarts: [Int32]
  let cache = WordCache()

  struct SpecialToken: Sendable {
    let bytes: [UInt8]
    let id: Int32
    /// Control and unknown tokens are matched only when special text is parsed; user-defined ones always are.
    let onlyWhenParsingSpecial: Bool
  }

  /// Builds a tokenizer from the GGUF `tokenizer.ggml.*` values. `tokenTypes` may be empty (all normal). A malformed
  /// input throws `TokenizerError.invalid` naming the GGUF key; repeated token texts resolve to the last id and
  /// repeated merges to the first rank, as in llama.cpp.
  /// `chatTemplate` is Jinja source (GGUF `tokenizer.chat_template`), which must be ChatML.
  public convenience init(tokens: [String], merges: [String], tokenTypes: [Int], preTokenizer: String, bos: Int?,
                          eos: Int?, unknown: Int?, addBOS: Bool, chatTemplate: String? = nil) throws {
    try self.init(tokens: tokens, merges: merges, tokenTypes: tokenTypes, preTokenizer: preTokenizer, bos: bos, eos: eos,
                  unknown: unknown, addBOS: addBOS, template: chatTemplate.map { try ChatTemplate($0) })
  }

  init(tokens: [String], merges: [String], tokenTypes: [Int], preTokenizer: String, bos: Int?, eos: Int?,
       unknown: Int?, addBOS: Bool, template: ChatTemplate?) throws {
    func fail(_ field: String, _ reason: String) -> TokenizerError { .invalid(field: field, reason: reason) }
    guard !tokens.isEmpty else { throw fail("tokenizer.ggml.tokens", "the vocabulary is empty") }
    guard tokens.count < Int(Int32.max) else { throw fail("tokenizer.ggml.tokens", "\(tokens.count) tokens is too many") }
    guard tokenTypes.isEmpty || tokenTypes.count == tokens.count else {
      throw fail("tokenizer.ggml.token_type", "\(tokenTypes.count) types for \(tokens.count) tokens")
    }
    var types: [TokenType] = []
    types.reserveCapacity(tokens.count)
    for (i, raw) in tokenTypes.enumerated() {
      guard let type = TokenType(rawValue: raw) else {
        throw fail("tokenizer.ggml.token_type[\(i)]", "\(raw) is not a token type (0...6)")
      }
      types.append(type)
    }
    if types.isEmpty { types = Array(repeating: .normal, count: tokens.count) }
    for (field, id) in [("tokenizer.ggml.bos_token_id", bos), ("tokenizer.ggml.eos_token_id", eos),
                        ("tokenizer.ggml.unknown_token_id", unknown)] {
      if let id, !(0..<tokens.count).contains(id) {
        throw fail(field, "\(id) is not a token id (0..<\(tokens.count))")
      }
    }
    self.tokens = tokens
    self.tokenTypes = types
    self.preTokenizer = try PreTokenizer(name: preTokenizer)
    self.bos = bos; self.eos = eos; self.unknown = unknown
    self.addBOS = addBOS
    self.chatTemplate = template

    var idsByText: [String: Int32] = [:]
    idsByText.reserveCapacity(tokens.count)
    for (i, text) in tokens.enumerated() { idsByText[text] = Int32(i) }
    self.idsByText = idsByText

    var table: [UInt64: UInt64] = [:]
    table.reserveCapacity(merges.count)
    for (rank, line) in merges.enumerated() {
      let field = "tokenizer.ggml.merges[\(rank)]"
      let utf8 = Array(line.utf8)
      // As llama.cpp: the first space after the first byte separates the two parts.
      guard utf8.count >= 3, let space = utf8[1...].firstIndex(of: 0x20), space + 1 < utf8.count else {
        throw fail(field, "'\(line)' is not two token texts separated by a space")
      }
      let left = String(decoding: utf8[..<space], as: UTF8.self)
      let right = String(decoding: utf8[(space + 1)...], as: UTF8.self)
      guard let l = idsByText[left] else { throw fail(field, "'\(left)' (of '\(line)') is not in tokenizer.ggml.tokens") }
      guard let r = idsByText[right] else { throw fail(field, "'\(right)' (of '\(line)') is not in tokenizer.ggml.tokens") }
      guard let merged = idsByText[left + right] else {
        throw fail(field, "the merged text '\(left + right)' is not in tokenizer.ggml.tokens")
      }
      let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
      if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(UInt32(merged)) }
    }
    self.merges = table

    byteTokens = ByteLevel.scalars.map { idsByText[String($0)] ?? -1 }

    var specials: [SpecialToken] = []
    for (i, type) in types.enumerated() where type == .control || type == .userDefined || type == .unknown {
      guard !tokens[i].isEmpty else { continue }
      specials.append(SpecialToken(bytes: Array(tokens[i].utf8), id: Int32(i), onlyWhenParsingSpecial: type != .userDefined))
    }
    // Longest first; ties by id, so the order does not depend on sorting details.
    self.specials = specials.sorted { ($0.bytes.count, -$0.id) > ($1.bytes.count, -$1.id) }

    var bytes: [UInt8] = [], starts: [Int32] = [0]
    starts.reserveCapacity(tokens.count + 1)
    for (i, text) in tokens.enumerated() {
      switch types[i] {
      case .normal: bytes += ByteLevel.decode(text)
      case .control, .userDefined, .unknown: bytes += text.utf8
      case .undefined, .unused, .byte: break                 // llama.cpp prints nothing for these in a BPE vocabulary
      }
      guard bytes.count < Int(Int32.max) else { throw fail("tokenizer.ggml.tokens", "the token texts are too long") }
      starts.append(Int32(bytes.count))
    }
    decodedBytes = bytes
    decodedStarts = starts
  }

  /// The number of tokens.
  public var vocabularySize: Int { tokens.count }

  /// The vocabulary string of a token: `tokenText(504) == "The"`, `tokenText(260) == "Ġthe"`.
  public func tokenText(_ id: Int) throws -> String {
    guard tokens.indices.contains(id) else { throw TokenizerError.unknownID(id, vocabularySize: tokens.count) }
    return tokens[id]
  }

  /// The id of a vocabulary string (`id(of: "Ġthe") == 260`), or nil.
  public func id(of text: String) -> Int? { idsByText[text].map(Int.init) }

  /// The text of `ids`: special tokens give their own text; bytes that do not form UTF-8 become U+FFFD.
  /// Unknown ids throw `TokenizerError.unknownID`.
  public func decode(_ ids: [Int]) throws -> String {
    var bytes: [UInt8] = []
    bytes.reserveCapacity(ids.count * 4)
    for id in ids { try appendBytes(of: id, to: &bytes) }
    return String(decoding: bytes, as: UTF8.self)
  }

  func appendBytes(of id: Int, to bytes: inout [UInt8]) throws {
    guard tokens.indices.contains(id) else { throw TokenizerError.unknownID(id, vocabularySize: tokens.count) }
    bytes += decodedBytes[Int(decodedStarts[id])..<Int(decodedStarts[id + 1])]
  }

  /// A decoder for ids arriving one at a time, that emits only complete characters.
  public func streamDecoder() -> TokenStreamDecoder { TokenStreamDecoder(tokenizer: self) }

  /// `messages` in the chat template (plain ChatML when the vocabulary has none), ending with the assistant's
  /// header when `addGenerationPrompt`.
  public func chatPrompt(messages: [(role: String, content: String)], addGenerationPrompt: Bool = true) -> String {
    (chatTemplate ?? .chatML).render(messages: messages, addGenerationPrompt: addGenerationPrompt)
  }
}

/// Token ids of recently seen words, shared by all encodes of one tokenizer.
final class WordCache: @unchecked Sendable {
  private let lock = NSLock()
  private var words: [ArraySlice<UInt8>: [Int32]] = [:]
  /// Cleared when it holds this many words, so memory stays bounded on endless distinct input.
  static let capacity = 65_536

  func get(_ word: ArraySlice<UInt8>) -> [Int32]? {
    lock.lock(); defer { lock.unlock() }
    return words[word]
  }

  func set(_ word: ArraySlice<UInt8>, _ ids: [Int32]) {
    let key = ArraySlice(Array(word))        // own copy: a slice would keep the whole text alive
    lock.lock(); defer { lock.unlock() }
    if words.count >= Self.capacity { words.removeAll(keepingCapacity: true) }
    words[key] = ids
  }
}
