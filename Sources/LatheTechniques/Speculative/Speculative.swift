// speculative(draft:, lookahead:): classic speculative decoding (Leviathan et al., 2023; Chen et al., 2023) with
// greedy verification. A draft model proposes `lookahead` tokens one at a time; the base model scores the last
// accepted token and every proposal in one call (k + 1 query rows), keeps the longest prefix of proposals that
// equal its own greedy choices, and adds its own next token. Both KV caches roll back past the rejected
// proposals, so the text is exactly the base model's greedy text.

import Foundation
import LatheModels

public final class Speculative: DecodingStrategy {
  public let draft: LlamaModel
  public let lookahead: Int
  /// Counters over every decode this value ran, updated in place.
  public private(set) var totals = Counters()

  public struct Counters: Sendable, Equatable {
    /// Forward calls of the base model and of the draft model while decoding (prefill not counted).
    public var baseCalls = 0, draftCalls = 0
    /// Draft tokens proposed and accepted.
    public var proposed = 0, accepted = 0
    /// Tokens produced, and decodes run (each began from a prefill's logits: one base call more per decode).
    public var tokens = 0, decodes = 0
    public var acceptance: Double { proposed == 0 ? 0 : Double(accepted) / Double(proposed) }
    /// Tokens per base forward call, counting the call that gave the first token (the prefill): 1 when the draft is
    /// never right, lookahead + 1 when it always is.
    public var tokensPerBaseCall: Double { baseCalls + decodes == 0 ? 0 : Double(tokens) / Double(baseCalls + decodes) }
    mutating func add(_ o: Counters) {
      baseCalls += o.baseCalls; draftCalls += o.draftCalls; proposed += o.proposed; accepted += o.accepted; tokens += o.tokens
      decodes += o.decodes
    }
    var fields: [(String, TechniqueArgument)] {
      [("baseCalls", .int(baseCalls)), ("draftCalls", .int(draftCalls)), ("proposed", .int(proposed)), ("accepted", .int(accepted)),
       ("acceptance", .float(acceptance)), ("tokensPerBaseCall", .float(tokensPerBaseCall))]
    }
  }

  public init(draft: LlamaModel, lookahead: Int) throws {
    guard (1...16).contains(lookahead) else { throw TechniqueError("speculative: lookahead must be 1 to 16 tokens, got \(lookahead)") }
    self.draft = draft; self.lookahead = lookahead
  }

  public var entry: TechniqueEntry { Speculative.entry }
  public var description: String { "speculative(draft: \(draft.name), lookahead: \(lookahead))" }
  public var fields: [(String, TechniqueArgument)] { [("draft", .object(draft)), ("lookahead", .int(lookahead))] + totals.fields }
  /// It holds a model, which a notebook keeps by itself.
  public func saved() throws -> [UInt8]? { nil }

  public static let entry = TechniqueEntry(
    name: "speculative", roles: [.decodingStrategy],
    parameters: [TechniqueParameter(required: "draft", "the draft language model (same vocabulary), e.g. compress(m, droplayers(keep: 0.5))"),
                 TechniqueParameter("lookahead", .int(4), "tokens the draft proposes per base call")],
    doc: "Speculative decoding for generate(m, p, t) and decode(m, kv, t): the draft proposes `lookahead` tokens, the base model checks them all in one call and keeps the longest prefix that equals its own greedy choice, plus its own next token; both KV caches roll back past rejected tokens, so the text is exactly the base model's greedy text. The generation reports baseCalls, acceptance and tokensPerBaseCall.",
    example: "generate(m, \"The capital of France is\", speculative(draft: compress(m, droplayers(keep: 0.5))), tokens: 32)",
    make: { a in try Speculative(draft: try a.object("draft", LlamaModel.self, "a language model"), lookahead: try a.int("lookahead")) },
    decode: { _ in throw TechniqueError("load: a speculative(...) value holds a model and is not saved by itself") })

  public func decode(_ model: LlamaModel, context: [Int], cache: KVCache, logits: [Float]?, maxTokens: Int, sampler: inout Sampler,
                     stop: [String], onToken: (Int, String) throws -> Void) throws -> DecodingResult {
    guard sampler.temperature == 0 else {
      throw TechniqueError("speculative: verification is greedy, so decoding needs temperature 0, got \(sampler.temperature)")
    }
    guard draft.config.vocabularySize == model.config.vocabularySize else {
      throw TechniqueError("speculative: the draft's vocabulary has \(draft.config.vocabularySize) tokens, the model's \(model.config.vocabularySize)")
    }
    guard maxTokens >= 0 else { throw TechniqueError("speculative: tokens must be >= 0, got \(maxTokens)") }
    guard cache.count == context.count, let first = logits else {
      throw TechniqueError("speculative: the KV cache holds \(cache.count) positions for \(context.count) tokens of context")
    }
    var counters = Counters()
    counters.decodes = 1
    let started = DispatchTime.now().uptimeNanoseconds
    let limit = Swift.min(model.config.contextLength, draft.config.contextLength)
    var out = GreedyOutput(model: model, context: context, stop: stop, maxTokens: maxTokens, limit: limit)
    let draftCache = try draft.makeCache(capacity: Swift.min(limit, context.count + maxTokens + lookahead + 1))
    var baseLogits = first
    var done = false
    func emit(_ id: Int) throws -> Bool { counters.tokens += 1; return try out.emit(id, onToken) }

    while !done && out.result.tokens.count < maxTokens {
      // The base model's own next token is always right.
      let next = Sampler.argmax(baseLogits)
      if try emit(next) { break }
      // The draft catches up on every accepted token it has not seen, then proposes k more one at a time.
      let k = Swift.min(lookahead, maxTokens - out.result.tokens.count, limit - out.tokens.count)
      guard k >= 1 else { break }
      var draftLogits = try draft.forward(Array(out.tokens[draftCache.count...]), cache: draftCache)
      counters.draftCalls += 1
      var proposals: [Int] = []
      for i in 0..<k {
        let d = Sampler.argmax(draftLogits)
        proposals.append(d)
        if i + 1 < k {
          draftLogits = try draft.forward([d], cache: draftCache)
          counters.draftCalls += 1
        }
      }
      // One base call scores `next` and every proposal: row i holds the logits after proposal i (row 0: after next).
      let vocab = model.config.vocabularySize
      let rows = try model.forward([next] + proposals, cache: cache, allLogits: true)
      counters.baseCalls += 1
      counters.proposed += k
      var accepted = 0
      while accepted < k, Sampler.argmax(Array(rows[(accepted * vocab)..<((accepted + 1) * vocab)])) == proposals[accepted] { accepted += 1 }
      counters.accepted += accepted
      var emitted = 0
      for d in proposals.prefix(accepted) {
        emitted += 1
        if try emit(d) { done = true; break }
      }
      // Roll both caches back to the tokens kept; the base's logits after them are row `emitted`.
      cache.truncate(to: out.tokens.count)
      if draftCache.count > out.tokens.count { draftCache.truncate(to: out.tokens.count) }
      baseLogits = Array(rows[(emitted * vocab)..<((emitted + 1) * vocab)])
    }
    // As after a plain decode, the last token is pending: the cache holds the tokens before it.
    if cache.count >= out.tokens.count, out.tokens.count > context.count { cache.truncate(to: out.tokens.count - 1) }
    try out.finish(onToken)
    var result = out.result
    result.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    totals.add(counters)
    // calls and cr as the other decoding strategies report them: target calls, the prefill's included.
    return DecodingResult(generation: result, counters: counters.fields + [("draftTokens", .int(counters.proposed)),
                                                                        ("calls", .int(counters.baseCalls + counters.decodes)),
                                                                        ("cr", .float(counters.tokensPerBaseCall))])
  }
}
