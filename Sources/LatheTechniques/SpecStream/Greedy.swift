// greedy(): plain greedy decoding as a decoding strategy, with the counters the speculative strategies report
// (calls, cr), so that a table compares them on one footing: one call per token, cr 1.

import Foundation
import LatheModels

public final class Greedy: DecodingStrategy {
  /// Model calls and tokens over every decode this value ran (the call that gave a decode's first token counted).
  public private(set) var calls = 0, tokens = 0

  public init() {}

  public var entry: TechniqueEntry { Greedy.entry }
  public var description: String { "greedy()" }
  public var fields: [(String, TechniqueArgument)] { [("calls", .int(calls)), ("tokens", .int(tokens))] }
  public func saved() throws -> [UInt8]? { Array(description.utf8) }

  public static let entry = TechniqueEntry(
    name: "greedy", roles: [.decodingStrategy], parameters: [],
    doc: "Greedy decoding as a decoding strategy for generate(m, p, t) and decode(m, kv, t): the baseline the speculative strategies (specstream, medusa, speculative) must match token for token; it reports calls (one per token) and cr (1).",
    example: "generate(m, \"SELECT\", greedy(), tokens: 32)",
    make: { _ in Greedy() },
    decode: { _ in Greedy() })

  public func decode(_ model: LlamaModel, context: [Int], cache: KVCache, logits: [Float]?, maxTokens: Int, sampler: inout Sampler,
                     stop: [String], onToken: (Int, String) throws -> Void) throws -> DecodingResult {
    guard let logits, cache.count == context.count else {
      throw TechniqueError("greedy: the KV cache holds \(cache.count) positions for \(context.count) tokens of context")
    }
    guard sampler.temperature == 0 else { throw TechniqueError("greedy: greedy decoding needs temperature 0, got \(sampler.temperature)") }
    let g = try model.decode(cache: cache, logits: logits, maxTokens: maxTokens, sampler: &sampler, stop: stop, onToken: onToken)
    // The first token comes from the call that filled the cache, each later one from a call of its own.
    let n = g.tokens.count
    calls += n; tokens += n
    return DecodingResult(generation: g, counters: [("calls", .int(n)), ("cr", .float(n == 0 ? 0 : 1)), ("draftCalls", .int(0))])
  }
}
