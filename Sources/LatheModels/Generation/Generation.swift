// Generation and evaluation on a LlamaModel: prefill, token-by-token decoding with a sampler and stop conditions,
// and perplexity over fixed windows.

import Foundation
import LatheTensor

public struct Generation: Sendable {
  public var tokens: [Int] = []
  public var text = ""
  /// Why it stopped: "length", "eos", or the stop string that matched.
  public var stopReason = "length"
  public var promptTokens = 0
  public var prefillSeconds = 0.0, decodeSeconds = 0.0
  public var decodeTokensPerSecond: Double { tokens.count > 1 ? Double(tokens.count - 1) / decodeSeconds : 0 }
  public init() {}
}

public struct Perplexity: Sendable {
  public var perplexity: Double
  /// Mean negative log-likelihood per predicted token (nats).
  public var meanNLL: Double
  public var predictedTokens: Int
  public var windows: Int
  public var seconds: Double
}

extension LlamaModel {
  func requireTokenizer(_ op: String) throws -> BPETokenizer {
    guard let tokenizer else { throw TensorError.invalidArgument(op: op, reason: "the model has no tokenizer") }
    return tokenizer
  }

  /// Rows for a cache of `prompt` tokens and `extra` more: never more than the context allows past the prompt, so a
  /// huge `room:` is the context, not an overflow.
  public func cacheCapacity(prompt: Int, extra: Int) -> Int {
    prompt + Swift.min(Swift.max(0, extra), Swift.max(0, config.contextLength - prompt))
  }

  /// Prefills `prompt` into a fresh cache with room for `extra` more positions; returns the cache and the logits
  /// after the last prompt token.
  public func prefill(_ prompt: [Int], extra: Int = 256) throws -> (cache: KVCache, logits: [Float]) {
    let cache = try makeCache(capacity: cacheCapacity(prompt: prompt.count, extra: extra))
    let logits = try forward(prompt, cache: cache)
    return (cache, logits)
  }

  /// Decodes up to `maxTokens` tokens after the cache's contents, starting from `logits` (those after its last
  /// token). `onToken(id, text)` sees each token and the text it completes (possibly empty: a character split across
  /// tokens comes out with its last token); it may throw to stop (an interrupt). Stops at the end-of-sequence token
  /// or when the text so far ends with one of `stop`.
  public func decode(cache: KVCache, logits first: [Float], maxTokens: Int, sampler: inout Sampler, stop: [String] = [],
                     onToken: (Int, String) throws -> Void = { _, _ in }) throws -> Generation {
    guard maxTokens >= 0 else { throw TensorError.invalidArgument(op: "decode", reason: "tokens must be >= 0, got \(maxTokens)") }
    var result = Generation()
    var logits = first
    var stream = tokenizer?.streamDecoder()
    let eos = tokenizer?.eos
    let started = DispatchTime.now().uptimeNanoseconds
    for i in 0..<maxTokens {
      let id = sampler.next(logits)
      result.tokens.append(id)
      if id == eos { result.stopReason = "eos"; try onToken(id, ""); break }
      let piece = try stream?.append(id) ?? ""
      result.text += piece
      try onToken(id, piece)
      if let s = stop.first(where: { !$0.isEmpty && result.text.hasSuffix($0) }) { result.stopReason = s; break }
      if i + 1 < maxTokens {
        if cache.count >= config.contextLength { result.stopReason = "context"; break }
        logits = try forward([id], cache: cache)
      }
    }
    if let rest = stream?.finish(), !rest.isEmpty { result.text += rest; try onToken(-1, rest) }
    result.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    return result
  }

  /// Prefill then decode.
  public func generate(_ prompt: [Int], maxTokens: Int, sampler: inout Sampler, stop: [String] = [],
                       onToken: (Int, String) throws -> Void = { _, _ in }) throws -> Generation {
    guard !prompt.isEmpty else { throw TensorError.invalidArgument(op: "generate", reason: "the prompt has no tokens") }
    let started = DispatchTime.now().uptimeNanoseconds
    let (cache, logits) = try prefill(prompt, extra: maxTokens)
    let prefillSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    var result = try decode(cache: cache, logits: logits, maxTokens: maxTokens, sampler: &sampler, stop: stop, onToken: onToken)
    result.promptTokens = prompt.count
    result.prefillSeconds = prefillSeconds
    return result
  }

  /// Perplexity over windows of `window` tokens starting every `stride` tokens (only whole windows; one shorter
  /// window when the text is shorter than one), at most `maxWindows` of them. The first window scores every position
  /// after its first token; a later window scores only the positions no earlier window scored (its last `stride`).
  /// No BOS is added. `progress(done, total)` runs after each window and may throw to stop.
  public func perplexity(_ tokens: [Int], window: Int, stride: Int, maxWindows: Int? = nil,
                         progress: (Int, Int) throws -> Void = { _, _ in }) throws -> Perplexity {
    guard window >= 2, window <= config.contextLength else {
      throw TensorError.invalidArgument(op: "perplexity", reason: "window must be in 2...\(config.contextLength), got \(window)")
    }
    guard stride >= 1, stride <= window else { throw TensorError.invalidArgument(op: "perplexity", reason: "stride must be in 1...\(window), got \(stride)") }
    guard tokens.count >= 2 else { throw TensorError.invalidArgument(op: "perplexity", reason: "needs at least 2 tokens, got \(tokens.count)") }
    var starts = Array(Swift.stride(from: 0, through: tokens.count - window, by: stride))
    if starts.isEmpty { starts = [0] }
    if let maxWindows { starts = Array(starts.prefix(Swift.max(1, maxWindows))) }
    let started = DispatchTime.now().uptimeNanoseconds
    var nll = 0.0, count = 0
    let vocab = config.vocabularySize
    for (w, s) in starts.enumerated() {
      let chunk = Array(tokens[s..<Swift.min(tokens.count, s + window)])
      let cache = try makeCache(capacity: chunk.count)
      let logits = try forward(chunk, cache: cache, allLogits: true)
      let first = w == 0 ? 0 : chunk.count - 1 - stride
      for p in Swift.max(0, first)..<(chunk.count - 1) {
        try Cancellation.check("perplexity")       // a window's 511 rows of 49,152 logits take tens of ms
        logits.withUnsafeBufferPointer { all in
          guard let base = all.baseAddress else { return }
          let row = base + p * vocab
          let m = FusedAttention.rowMaximum(row, vocab)
          nll += Double(m) + Foundation.log(Self.sumOfExponentials(row, count: vocab, minus: m)) - Double(row[chunk[p + 1]])
        }
        count += 1
      }
      try progress(w + 1, starts.count)
    }
    let mean = nll / Double(Swift.max(count, 1))
    return Perplexity(perplexity: Foundation.exp(mean), meanNLL: mean, predictedTokens: count, windows: starts.count,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
  }

  /// Perplexity of each window's tokens after its first `prompt`: `prefill(prompt tokens, room)` fills a cache (the
  /// model's own prefill, or a technique's), the logits it returns score token `prompt`, and the model runs the rest
  /// of the window teacher-forced from that cache. Whole windows only, every `stride` tokens, at most `maxWindows`.
  public func continuationPerplexity(_ tokens: [Int], window: Int, stride: Int, prompt: Int, maxWindows: Int? = nil,
                                     prefill: ([Int], Int) throws -> (KVCache, [Float]),
                                     progress: (Int, Int) throws -> Void = { _, _ in }) throws -> Perplexity {
    guard window >= 2, window <= config.contextLength else {
      throw TensorError.invalidArgument(op: "perplexity", reason: "window must be in 2...\(config.contextLength), got \(window)")
    }
    guard prompt >= 1, prompt < window else { throw TensorError.invalidArgument(op: "perplexity", reason: "prompt must be in 1..<\(window) (the window), got \(prompt)") }
    guard stride >= 1 else { throw TensorError.invalidArgument(op: "perplexity", reason: "stride must be >= 1, got \(stride)") }
    guard tokens.count >= window else {
      throw TensorError.invalidArgument(op: "perplexity", reason: "the text has \(tokens.count) tokens, fewer than one window of \(window)")
    }
    var starts = Array(Swift.stride(from: 0, through: tokens.count - window, by: stride))
    if let maxWindows { starts = Array(starts.prefix(Swift.max(1, maxWindows))) }
    let started = DispatchTime.now().uptimeNanoseconds
    let vocab = config.vocabularySize
    var nll = 0.0, count = 0
    func score(_ row: UnsafePointer<Float>, _ target: Int) {
      let m = FusedAttention.rowMaximum(row, vocab)
      nll += Double(m) + Foundation.log(Self.sumOfExponentials(row, count: vocab, minus: m)) - Double(row[target])
      count += 1
    }
    for (w, s) in starts.enumerated() {
      let chunk = Array(tokens[s..<(s + window)])
      let (cache, first) = try prefill(Array(chunk[0..<prompt]), window - prompt)
      guard first.count == vocab, cache.count == prompt else {
        throw TensorError.invalidArgument(op: "perplexity", reason: "the prefill gave \(cache.count) cached positions and \(first.count) logits for a prompt of \(prompt)")
      }
      first.withUnsafeBufferPointer { if let p = $0.baseAddress { score(p, chunk[prompt]) } }
      if prompt + 1 < window {
        let rows = try forward(Array(chunk[prompt..<(window - 1)]), cache: cache, allLogits: true)
        try rows.withUnsafeBufferPointer { all in
          guard let base = all.baseAddress else { return }
          for (r, target) in chunk[(prompt + 1)...].enumerated() {
            try Cancellation.check("perplexity")
            score(base + r * vocab, target)
          }
        }
      }
      try progress(w + 1, starts.count)
    }
    let mean = nll / Double(Swift.max(count, 1))
    return Perplexity(perplexity: Foundation.exp(mean), meanNLL: mean, predictedTokens: count, windows: starts.count,
                      seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9)
  }

  /// Σ e^(row[j] − shift) over the row: SIMD exponentials (FastExp, within 2 ulp), each vector's sum added in Double.
  static func sumOfExponentials(_ row: UnsafePointer<Float>, count: Int, minus shift: Float) -> Double {
    let top = SIMD16<Float>(repeating: shift)
    var sum = 0.0, j = 0
    while j + 16 <= count {
      sum += Double(FastExp.exp(UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self) - top).sum())
      j += 16
    }
    while j < count { sum += Double(FastExp.exp(row[j] - shift)); j += 1 }
    return sum
  }
}
