// Parallel prefill over Open MPI (two ranks started by mpirun, talking over TCP as between machines) against the
// serial prefill of SmolLM2 (kv-runahead.md checks 1 and 2): every layer's keys and values within 1e-4, the logits
// within 1e-3 and the same first token, for runahead and tsp over even, front-loaded and 1-token-chunk partitions;
// the bytes each rank sends by the spec's formulas. Runs only when LATHE_MPI=1 (the build then has lathe-mpi).

import Foundation
import Testing
import LatheModels
import LatheParallel
import LatheTestSupport

struct MPIPrefillCase: CustomTestStringConvertible, Sendable {
  var method: ParallelPrefillMethod, chunks: [Int], tcpOnly = true
  var testDescription: String { "\(method.rawValue) \(chunks)\(tcpOnly ? " tcp" : "")" }
}

let mpiEnabled = ProcessInfo.processInfo.environment["LATHE_MPI"] == "1"

@Suite(.serialized, .enabled(if: mpiEnabled, "set LATHE_MPI=1 to build lathe-mpi and run the MPI transport's tests"))
struct MPIPrefillReleaseTests {
  static let promptLength = 64
  static let cases: [MPIPrefillCase] = [
    .init(method: .runahead, chunks: [32, 32]), .init(method: .runahead, chunks: [45, 19]),
    .init(method: .runahead, chunks: [63, 1]), .init(method: .runahead, chunks: [1, 63]),
    .init(method: .tsp, chunks: [32, 32]), .init(method: .tsp, chunks: [63, 1]),
    .init(method: .runahead, chunks: [40, 24], tcpOnly: false),
  ]

  @Test(arguments: cases)
  func mpiPrefillMatchesSerial(_ c: MPIPrefillCase) throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(Self.promptLength)
    let (cache, logits) = try ParallelPrefillReleaseTests.serial.get()
    let r = try model.parallelPrefill(prompt, method: c.method, chunks: c.chunks, extra: 8, mpi: MPILaunch(tcpOnly: c.tcpOnly))
    let layers = model.config.layerCount
    expectMatchesSerial(r, method: c.method, chunks: c.chunks, model: model, serial: (cache, logits), label: c.testDescription)
    // Timelines: one compute stretch per layer plus the head; runahead's rank 0 never waits.
    for (i, t) in r.processes.enumerated() {
      #expect(t.events.filter { $0.kind == .compute }.count == layers + 1)
      let waits = t.events.filter { $0.kind == .wait }.count
      #expect(waits == (c.method == .runahead && i == 0 ? 0 : layers), "rank \(i): \(waits) waits")
    }
    #expect(r.ttft > 0 && r.startSeconds > 0)
    print(String(format: "MPI %@: ttft %.3f s, start %.3f s, wait %@", c.testDescription, r.ttft, r.startSeconds,
                 r.processes.map { String(format: "%.3f", $0.wait) }.joined(separator: "/")))
  }

  @Test func decodingContinuesFromAnMPIPrefill() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(Self.promptLength)
    let (cache, logits) = try model.prefill(prompt, extra: 8)
    var sampler = try Sampler()
    let serial = try model.decode(cache: cache, logits: logits, maxTokens: 6, sampler: &sampler)
    let r = try model.parallelPrefill(prompt, method: .runahead, chunks: [40, 24], extra: 8, mpi: MPILaunch())
    var s = try Sampler()
    #expect(try model.decode(cache: r.cache, logits: r.logits, maxTokens: 6, sampler: &s).tokens == serial.tokens)
  }

  /// A rank that fails (here: the model file is gone by the time the ranks open it) aborts the job, and the error
  /// carries what the rank said.
  @Test func aFailingRankAbortsTheJobWithItsMessage() throws {
    let folder = try TestPaths.temporaryDirectory("mpi-test")
    defer { try? FileManager.default.removeItem(at: folder) }
    let copy = folder.appendingPathComponent("m.gguf").path
    try FileManager.default.copyItem(atPath: SmolLM2Parallel.path, toPath: copy)
    let model = try LlamaModel(path: copy)
    try FileManager.default.removeItem(atPath: copy)
    let prompt = try SmolLM2Parallel.prompt(8)
    let error = #expect(throws: ParallelError.self) {
      try model.parallelPrefill(prompt, method: .tsp, chunks: [4, 4], mpi: MPILaunch())
    }
    #expect(error?.description.contains("lathe-mpi: rank") == true, "\(String(describing: error))")
  }

  @Test func aMissingRankExecutableIsAnError() throws {
    let model = try SmolLM2Parallel.model()
    let prompt = try SmolLM2Parallel.prompt(8)
    let error = #expect(throws: ParallelError.self) {
      try model.parallelPrefill(prompt, method: .runahead, chunks: [4, 4], mpi: MPILaunch(executable: "/nonexistent/lathe-mpi"))
    }
    #expect(error?.description.hasPrefix("parallel prefill over MPI: mpirun exited with status") == true, "\(String(describing: error))")
  }
}

/// The command line mpirun gets stays short at any prompt length (the ids travel on rank 0's standard input, and
/// Linux limits one argument to 128 KiB), and --allow-run-as-root is there only for root.
@Test(arguments: [1, 4_096, 30_000, 60_000, 250_000])
func mpiArgumentsStayShortAndTokensTravelOnStandardInput(tokens: Int) throws {
  let ids = (0..<tokens).map { ($0 * 7919) % 49_152 }
  let job = MPIPrefillJob(method: .runahead, chunks: tokens == 1 ? [1] : [tokens / 2, tokens - tokens / 2], tokens: ids,
                          modelPath: "/models/m.gguf")
  let arguments = MPILaunch().arguments(procs: job.chunks.count, executable: "/bin/lathe-mpi", job: job)
  #expect(arguments.allSatisfy { $0.utf8.count < 128 * 1024 } && arguments.joined(separator: " ").utf8.count < 4096)
  #expect(!arguments.contains("--tokens") && arguments.contains("--token-count"))
  #expect(arguments.contains("--allow-run-as-root") == (geteuid() == 0))
  // What rank 0 reads back and every rank then builds the same job from.
  let rankArguments = Array(arguments.drop { $0 != "/bin/lathe-mpi" }.dropFirst())
  let count = try MPIPrefillJob.tokenCount(arguments: rankArguments)
  let read = try MPIPrefillJob.tokens(text: job.tokenText, count: count)
  #expect(try MPIPrefillJob(arguments: rankArguments, tokens: read) == job)
  #expect(throws: (any Error).self) { try MPIPrefillJob.tokens(text: job.tokenText + ",5", count: count) }
  #expect(throws: (any Error).self) { try MPIPrefillJob(arguments: rankArguments, tokens: Array(read.dropLast())) }
}
