// Parallel prefill on real worker processes against the serial prefill of SmolLM2 (kv-runahead.md checks 1, 2, 3
// and 7): for 1 to 4 processes and even, front-loaded and 1-token-chunk partitions, every layer's keys and values
// within 1e-4, the logits within 1e-3 and the same first token, for runahead and tsp; the bytes each process sends
// and the attention MACs by the spec's formulas; each process's own cache; decoding continues from the result.

import Foundation
import Testing
import LatheTestSupport
import LatheModels
import LatheParallel

struct PrefillCase: CustomTestStringConvertible, Sendable {
  var method: ParallelPrefillMethod, chunks: [Int]
  var testDescription: String { "\(method.rawValue) \(chunks)" }
}

/// 64 prompt tokens: even, front-loaded (about 0.7 / 0.3 for two) and 1-token-chunk partitions of 1 to 4 processes.
let prefillCases: [PrefillCase] = {
  let partitions: [[Int]] = [[64], [32, 32], [45, 19], [63, 1], [1, 63], [22, 21, 21], [32, 19, 13], [1, 40, 23],
                             [16, 16, 16, 16], [26, 19, 13, 6], [30, 1, 1, 32]]
  let tsp: [[Int]] = [[32, 32], [22, 21, 21], [16, 16, 16, 16], [63, 1], [30, 1, 1, 32]]
  return partitions.map { PrefillCase(method: .runahead, chunks: $0) } + tsp.map { PrefillCase(method: .tsp, chunks: $0) }
}()

@Suite(.serialized) struct ParallelPrefillReleaseTests {
  static let promptLength = 64
  nonisolated(unsafe) static let serial: Result<(cache: KVCache, logits: [Float]), Error> = Result {
    try SmolLM2Parallel.model().prefill(try SmolLM2Parallel.prompt(promptLength), extra: 0)
  }

  @Test(arguments: prefillCases)
  func parallelPrefillMatchesSerial(_ c: PrefillCase) throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(Self.promptLength)
    let (cache, logits) = try Self.serial.get()
    let r = try model.parallelPrefill(prompt, method: c.method, chunks: c.chunks, extra: 8, processCaches: true)
    let layers = model.config.layerCount
    expectMatchesSerial(r, method: c.method, chunks: c.chunks, model: model, serial: (cache, logits), label: c.testDescription)
    let p = c.chunks.count
    let ends = c.chunks.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }
    // MACs by the spec's formula; each process's cache holds S_i rows (tsp: C), equal to serial's.
    let macs = 2 * 9 * 64 * layers * (c.method == .runahead ? zip(c.chunks, ends).reduce(0) { $0 + $1.0 * $1.1 } : 64 * 64)
    #expect(r.attentionMACs == macs)
    try #require(r.processCaches.count == p)
    for (i, own) in r.processCaches.enumerated() {
      #expect(own.count == (c.method == .runahead || p == 1 ? ends[i] : prompt.count))
      #expect(maxCacheDifference(own, cache, layers: layers, rows: own.count) <= 1e-4, "process \(i)'s cache")
    }
    // Timelines: one compute stretch per layer plus the head, waits only where the method waits.
    for (i, t) in r.processes.enumerated() where p > 1 {
      #expect(t.events.filter { $0.kind == .compute }.count == layers + 1)
      let waits = t.events.filter { $0.kind == .wait }.count
      #expect(waits == (c.method == .runahead ? (i == 0 ? 0 : layers) : layers), "process \(i): \(waits) waits")
      #expect(t.events.allSatisfy { $0.start >= 0 && $0.end >= $0.start && $0.end <= t.finished })
    }
  }

  @Test func decodingContinuesFromAParallelPrefill() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(Self.promptLength)
    let (cache, logits) = try model.prefill(prompt, extra: 8)
    var sampler = try Sampler()
    let serial = try model.decode(cache: cache, logits: logits, maxTokens: 6, sampler: &sampler)
    for method in [ParallelPrefillMethod.runahead, .tsp] {
      let r = try model.parallelPrefill(prompt, method: method, chunks: [40, 24], extra: 8)
      var s = try Sampler()
      let continued = try model.decode(cache: r.cache, logits: r.logits, maxTokens: 6, sampler: &s)
      #expect(continued.tokens == serial.tokens, "\(method)")
    }
  }
}

/// Workers hold a model by its file's identity, not its path: a model saved over the same path and loaded again is
/// what they run (not the first one, which they had loaded), and a model whose file was replaced after it was loaded
/// runs from a copy of itself. Each parallel prefill equals the serial one of the model it was asked of.
extension ParallelPrefillReleaseTests {
@Test func workersFollowAModelSavedOverTheSamePath() throws {
  let dir = try TestPaths.temporaryDirectory("same-path")
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("m.gguf").path
  let prompt = try SmolLM2Parallel.prompt(24)
  func check(_ model: LlamaModel, _ label: String) throws {
    let serial = try model.prefill(prompt, extra: 0)
    let r = try model.parallelPrefill(prompt, method: .runahead, chunks: [12, 12], extra: 0)
    expectMatchesSerial(r, method: .runahead, chunks: [12, 12], model: model, serial: serial, label: label)
  }
  try SmolLM2Parallel.model().writeGGUF(to: path)                       // Q4_1 as loaded
  let first = try LlamaModel(path: path)
  try check(first, "the first model")
  try first.writeGGUF(to: path, type: GGMLType.q8_0)                           // other weights, same path
  let second = try LlamaModel(path: path)
  #expect(second.unchangedGGUFPath == path && first.unchangedGGUFPath == nil)
  try check(second, "the model saved over it")
  try first.writeGGUF(to: path)                                        // replaced again while `second` is loaded
  #expect(second.unchangedGGUFPath == nil)
  try check(second, "a model whose file was replaced")
  // The same bytes under a new inode (a copy renamed into place) and a file touched to another mtime: each is a new
  // identity, so the workers load it again and still match the serial run.
  let third = try LlamaModel(path: path)
  try FileManager.default.copyItem(atPath: path, toPath: path + ".copy")
  #expect(rename(path + ".copy", path) == 0)
  #expect(third.unchangedGGUFPath == nil)
  try check(third, "a model whose file was replaced by a copy of itself")
  let fourth = try LlamaModel(path: path)
  var times = [timespec(tv_sec: 1_000_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000_000, tv_nsec: 0)]
  #expect(utimensat(AT_FDCWD, path, &times, 0) == 0)
  #expect(fourth.unchangedGGUFPath == nil)
  try check(fourth, "a model whose file was touched")
}
}
