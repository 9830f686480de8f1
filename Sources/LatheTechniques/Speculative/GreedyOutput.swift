// The output side of a speculative decoding loop (speculative, specstream): each token the model confirms goes into
// the generation and its text, and the loop learns whether to stop (end token, stop string, token budget, context).

import LatheModels

struct GreedyOutput {
  var result = Generation()
  /// Every token so far: the context, then the generated ones.
  private(set) var tokens: [Int]
  private var stream: TokenStreamDecoder?
  private let eos: Int?, stop: [String], maxTokens: Int, limit: Int

  init(model: LlamaModel, context: [Int], stop: [String], maxTokens: Int, limit: Int) {
    tokens = context
    stream = model.tokenizer?.streamDecoder()
    eos = model.tokenizer?.eos
    self.stop = stop; self.maxTokens = maxTokens; self.limit = limit
  }

  /// Adds one token to the output; true when generation must end.
  mutating func emit(_ id: Int, _ onToken: (Int, String) throws -> Void) throws -> Bool {
    tokens.append(id)
    result.tokens.append(id)
    if id == eos { result.stopReason = "eos"; try onToken(id, ""); return true }
    let piece = try stream?.append(id) ?? ""
    result.text += piece
    try onToken(id, piece)
    if let s = stop.first(where: { !$0.isEmpty && result.text.hasSuffix($0) }) { result.stopReason = s; return true }
    if result.tokens.count >= maxTokens { return true }
    if tokens.count >= limit { result.stopReason = "context"; return true }
    return false
  }

  /// The text the stream decoder still holds, at the end.
  mutating func finish(_ onToken: (Int, String) throws -> Void) throws {
    if let rest = stream?.finish(), !rest.isEmpty { result.text += rest; try onToken(-1, rest) }
  }
}
