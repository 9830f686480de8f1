// Parallel prefill over Open MPI, for ranks on several machines: the parent runs `mpirun ... lathe-mpi <job>` as a
// child process, one rank per chunk, and reads the last rank's answer (its cache, logits and every rank's timeline)
// from mpirun's standard output. The ranks themselves (Sources/LatheMPI) exist only in a build with LATHE_MPI=1;
// this side needs no MPI library, only `mpirun` on the PATH and `lathe-mpi` beside the running executable.

import Foundation
import LatheModels

/// How `mpirun` starts the ranks of a parallel prefill.
///
///     let r = try model.parallelPrefill(ids, method: .runahead, chunks: [40, 24], mpi: MPILaunch(tcpOnly: true))
public struct MPILaunch: Sendable {
  /// An Open MPI hostfile (`node1 slots=1` a line); nil runs every rank on this machine. The model file and
  /// `lathe-mpi` must lie at the same paths on every host.
  public var hostfile: String?
  /// Ranks talk over TCP only (`--mca btl self,tcp`), as between machines; false lets Open MPI choose (shared memory
  /// between ranks on one machine).
  public var tcpOnly: Bool
  /// The mpirun command.
  public var mpirun: String
  /// The rank executable; nil: `$LATHE_MPI_EXECUTABLE`, else `lathe-mpi` beside the running executable.
  public var executable: String?
  /// More mpirun arguments, placed before the executable (e.g. ["--mca", "btl_tcp_if_include", "eth0"]).
  public var extraArguments: [String]

  public init(hostfile: String? = nil, tcpOnly: Bool = true, mpirun: String = "mpirun", executable: String? = nil,
              extraArguments: [String] = []) {
    self.hostfile = hostfile; self.tcpOnly = tcpOnly; self.mpirun = mpirun; self.executable = executable
    self.extraArguments = extraArguments
  }

  /// mpirun's arguments for `procs` ranks of `job`. Ranks run one compute thread each and yield the core while they
  /// wait for a message instead of polling (polling ranks starved each other on a loaded machine; engine-notes.md §5).
  /// TCP gets a progress thread: a message over the eager limit (64 KiB: 86 prompt tokens of one layer's keys)
  /// otherwise moves only when the sender next calls MPI, a layer later, so the receiver waits (1024 tokens,
  /// runahead 512/512: the last rank waited 2.6-5.3 s without it, 0.17 s with it).
  package func arguments(procs: Int, executable: String, job: MPIPrefillJob) -> [String] {
    // Open MPI refuses to run as root without --allow-run-as-root: given only then (a container's root).
    var a = (geteuid() == 0 ? ["--allow-run-as-root"] : []) + ["-np", String(procs), "--bind-to", "none", "--mca", "mpi_yield_when_idle", "1",
             "--mca", "btl_tcp_progress_thread", "1",
             "-x", "LATHE_THREADS=1", "-x", "OPENBLAS_NUM_THREADS=1", "-x", "SWIFT_BACKTRACE=enable=no"]
    if let hostfile { a += ["--hostfile", hostfile] } else { a += ["--oversubscribe"] }
    if tcpOnly { a += ["--mca", "btl", "self,tcp"] }
    return a + extraArguments + [executable] + job.arguments
  }

  func rankExecutable() throws -> String {
    if let executable { return executable }
    if let path = ProcessInfo.processInfo.environment["LATHE_MPI_EXECUTABLE"], !path.isEmpty { return path }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("lathe-mpi").path
    guard access(path, X_OK) == 0 else {
      throw ParallelError.invalidPlan("the MPI rank executable \(path) does not exist (build it with LATHE_MPI=1 swift build --product lathe-mpi, or set LATHE_MPI_EXECUTABLE)")
    }
    return path
  }
}

/// What every rank is told: the method, chunks and model path as command-line arguments, the prompt's token ids on
/// rank 0's standard input (mpirun forwards it), broadcast to the other ranks. Nothing needs a shared file system,
/// and the command line stays short at any prompt length (30k ids as text would pass Linux's 128 KiB per argument).
package struct MPIPrefillJob: Equatable {
  package var method: ParallelPrefillMethod
  package var chunks: [Int]
  package var tokens: [Int]
  package var modelPath: String

  package init(method: ParallelPrefillMethod, chunks: [Int], tokens: [Int], modelPath: String) {
    self.method = method; self.chunks = chunks; self.tokens = tokens; self.modelPath = modelPath
  }

  package var arguments: [String] {
    func list(_ v: [Int]) -> String { v.map(String.init).joined(separator: ",") }
    return ["--method", method.rawValue, "--chunks", list(chunks), "--model", modelPath, "--token-count", String(tokens.count)]
  }

  /// The token ids as rank 0 reads them from standard input: comma-separated, then a newline.
  package var tokenText: String { tokens.map(String.init).joined(separator: ",") + "\n" }

  /// The number of token ids `arguments` announce (they come on standard input).
  package static func tokenCount(arguments: [String]) throws -> Int {
    guard let i = arguments.firstIndex(of: "--token-count"), i + 1 < arguments.count, let n = Int(arguments[i + 1]),
          n > 0, n <= 1 << 24 else {
      throw ParallelError.invalidPlan("lathe-mpi: --token-count must be a count of 1 to 16777216 token ids")
    }
    return n
  }

  /// `count` token ids read from text (comma-separated), as rank 0 gets them on standard input.
  package static func tokens(text: String, count: Int) throws -> [Int] {
    let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",")
    let ids = parts.compactMap { Int($0) }
    guard ids.count == parts.count, ids.count == count else {
      throw ParallelError.invalidPlan("lathe-mpi: standard input holds \(ids.count) token ids of \(count) announced")
    }
    return ids
  }

  /// The job of `arguments`, with the token ids given separately when the arguments announce a count.
  package init(arguments: [String], tokens given: [Int]? = nil) throws {
    var fields: [String: String] = [:], i = 0
    while i < arguments.count {
      guard arguments[i].hasPrefix("--"), i + 1 < arguments.count else {
        throw ParallelError.invalidPlan("lathe-mpi: expected --method, --chunks, --model and --tokens, got \(arguments[i])")
      }
      fields[String(arguments[i].dropFirst(2))] = arguments[i + 1]
      i += 2
    }
    func ints(_ name: String) throws -> [Int] {
      guard let text = fields[name] else { throw ParallelError.invalidPlan("lathe-mpi: --\(name) is missing") }
      let v = text.split(separator: ",").compactMap { Int($0) }
      guard !v.isEmpty, v.count == text.split(separator: ",").count else { throw ParallelError.invalidPlan("lathe-mpi: --\(name) \(text) is not a list of integers") }
      return v
    }
    guard let name = fields["method"], let m = ParallelPrefillMethod(rawValue: name) else {
      throw ParallelError.invalidPlan("lathe-mpi: --method must be runahead or tsp")
    }
    guard let path = fields["model"] else { throw ParallelError.invalidPlan("lathe-mpi: --model is missing") }
    method = m; chunks = try ints("chunks"); modelPath = path
    if let given {
      guard given.count == (try MPIPrefillJob.tokenCount(arguments: arguments)) else {
        throw ParallelError.invalidPlan("lathe-mpi: \(given.count) token ids for --token-count \(fields["token-count"] ?? "")")
      }
      tokens = given
    } else {
      tokens = try ints("tokens")
    }
    try PrefillPartition.check(chunks, tokens: tokens.count)
  }
}

/// The last rank's answer: every rank's timeline and bytes sent, the logits, and its cache (C rows a layer).
package struct MPIPrefillResult {
  package var events: [[PrefillEvent]]
  package var bytesSent: [Int]
  /// Each rank's end, in seconds from its start (ranks start together, after a barrier once the model is loaded).
  package var finished: [Double]
  /// Seconds from the start to the logits on the last rank.
  package var ttft: Double
  package var logits: [Float]
  package var keys: [[Float]], values: [[Float]]

  package init(events: [[PrefillEvent]], bytesSent: [Int], finished: [Double], ttft: Double, logits: [Float],
               keys: [[Float]], values: [[Float]]) {
    self.events = events; self.bytesSent = bytesSent; self.finished = finished; self.ttft = ttft; self.logits = logits
    self.keys = keys; self.values = values
  }

  /// Printed on its own line of standard output, after this marker, as base64 (mpirun passes text through).
  package static let marker = "lathe-mpi-result "

  package func encoded() -> FrameWriter {
    var w = FrameWriter()
    w.int(events.count)
    for e in events { PrefillEvent.encode(e, into: &w) }
    w.ints(bytesSent); w.doubles(finished); w.double(ttft); w.floats(logits)
    w.int(keys.count)
    for l in keys.indices { w.floats(keys[l]); w.floats(values[l]) }
    return w
  }

  package init(_ r: inout FrameReader) throws {
    let n = try r.int("ranks")
    guard (1...4096).contains(n) else { throw ParallelError.malformedFrame("MPI result: \(n) ranks") }
    events = try (0..<n).map { _ in try PrefillEvent.decode(&r) }
    bytesSent = try r.ints("bytes sent"); finished = try r.doubles("finished"); ttft = try r.double("ttft")
    logits = try r.floats("logits")
    let layers = try r.int("layers")
    guard (0...100_000).contains(layers) else { throw ParallelError.malformedFrame("MPI result: \(layers) layers") }
    keys = []; values = []
    for _ in 0..<layers { keys.append(try r.floats("keys")); values.append(try r.floats("values")) }
    try r.finish("an MPI result")
    guard bytesSent.count == n, finished.count == n else { throw ParallelError.malformedFrame("MPI result: counters for \(bytesSent.count) of \(n) ranks") }
  }
}

extension LlamaModel {
  /// Prefills `prompt` split into `chunks`, one Open MPI rank per chunk, started by `mpirun` as `launch` says
  /// (`lathe-mpi`, built with LATHE_MPI=1). Every rank maps the model's GGUF file itself; a runahead rank receives
  /// the prefix keys and values of each layer from the rank before it and sends the longer prefix on with a
  /// non-blocking send, a tsp rank all-gathers them. `ttft` counts from the ranks' common start (after the model
  /// is loaded) to the logits on the last rank; `startSeconds` is the rest of the wall time (mpirun, loading, the
  /// answer's trip back). One chunk runs the serial prefill here, as the shared-memory path does.
  ///
  ///     let r = try model.parallelPrefill(ids, method: .tsp, chunks: [32, 32], mpi: MPILaunch(hostfile: "hosts"))
  public func parallelPrefill(_ prompt: [Int], method: ParallelPrefillMethod, chunks: [Int], extra: Int = 256,
                              mpi launch: MPILaunch) throws -> ParallelPrefill {
    if chunks.count == 1 { return try parallelPrefill(prompt, method: method, chunks: chunks, extra: extra) }
    try PrefillPartition.check(chunks, tokens: prompt.count)
    guard prompt.count <= config.contextLength else {
      throw ParallelError.invalidPlan("\(prompt.count) prompt tokens exceed the model's context of \(config.contextLength)")
    }
    if let bad = prompt.first(where: { $0 < 0 || $0 >= config.vocabularySize }) {
      throw ParallelError.invalidPlan("token id \(bad) is outside the vocabulary 0..<\(config.vocabularySize)")
    }
    guard let path = ggufPath else {
      throw ParallelError.invalidPlan("MPI prefill needs a model loaded from a GGUF file (every rank loads the file at the same path)")
    }
    // Another file saved at the path would be what the ranks load: refuse. (A file that is gone the ranks report.)
    if let now = FileIdentity.of(path: path), now != ggufIdentity {
      throw ParallelError.invalidPlan("MPI prefill: \(path) was replaced since this model was loaded from it; load it again")
    }
    let job = MPIPrefillJob(method: method, chunks: chunks, tokens: prompt, modelPath: path)
    let started = monotonicNanoseconds()
    let output = try runMPI(launch.arguments(procs: chunks.count, executable: try launch.rankExecutable(), job: job),
                            mpirun: launch.mpirun, input: job.tokenText)
    let wall = Double(monotonicNanoseconds() - started) / 1e9
    guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix(MPIPrefillResult.marker) }),
          let data = Data(base64Encoded: String(line.dropFirst(MPIPrefillResult.marker.count)).trimmingCharacters(in: .whitespacesAndNewlines)) else {
      throw ParallelError.mpiFailed("mpirun finished without the last rank's answer")
    }
    var reader = FrameReader([UInt8](data))
    let result = try MPIPrefillResult(&reader)
    let layers = config.layerCount, widths = config.kvHeadCounts.map { $0 * config.headDimension }
    guard result.events.count == chunks.count, result.logits.count == config.vocabularySize, result.keys.count == layers,
          (0..<layers).allSatisfy({ result.keys[$0].count == prompt.count * widths[$0] && result.values[$0].count == prompt.count * widths[$0] }) else {
      throw ParallelError.malformedFrame("MPI result does not fit the model and prompt")
    }
    let cache = try makeCache(capacity: cacheCapacity(prompt: prompt.count, extra: extra))
    for l in 0..<layers {
      try cache.write(layer: l, at: 0, rows: prompt.count, keys: result.keys[l], values: result.values[l], limit: config.contextLength)
    }
    try cache.setCount(prompt.count)
    let timelines = chunks.indices.map {
      ProcessTimeline(events: result.events[$0], bytesSent: result.bytesSent[$0], finished: result.finished[$0])
    }
    return ParallelPrefill(method: method, chunks: chunks, cache: cache, logits: result.logits, firstToken: Sampler.argmax(result.logits),
                           ttft: result.ttft, startSeconds: Swift.max(0, wall - result.ttft), processes: timelines,
                           processCaches: [], attentionMACs: PrefillPartition.attentionMACs(method, chunks: chunks, config: config))
  }

  /// Runs mpirun with `arguments`; returns its standard output, or throws with the end of its standard error.
  private func runMPI(_ arguments: [String], mpirun: String, input: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [mpirun] + arguments
    var environment = ProcessInfo.processInfo.environment
    environment["LATHE_THREADS"] = "1"; environment["OPENBLAS_NUM_THREADS"] = "1"
    process.environment = environment
    let errors = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-mpirun-\(getpid())-\(monotonicNanoseconds()).err")
    guard FileManager.default.createFile(atPath: errors.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
      throw ParallelError.posix("open", "creating \(errors.path) for mpirun's errors")
    }
    defer { try? FileManager.default.removeItem(at: errors) }
    let errorHandle = try FileHandle(forWritingTo: errors)
    defer { try? errorHandle.close() }
    let out = Pipe(), inputPipe = Pipe()
    process.standardOutput = out
    process.standardError = errorHandle
    process.standardInput = inputPipe
    do { try process.run() } catch {
      throw ParallelError.mpiFailed("could not start \(mpirun) (install Open MPI: apt-get install openmpi-bin): \(error)")
    }
    // The token ids go to rank 0 on standard input, written from another thread: a long prompt fills the pipe, and
    // this thread must read the output meanwhile.
    let writer = inputPipe.fileHandleForWriting
    let bytes = Data(input.utf8)
    let written = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      try? writer.write(contentsOf: bytes)
      try? writer.close()
      written.signal()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    written.wait()
    process.waitUntilExit()
    guard process.terminationReason == .exit, process.terminationStatus == 0 else {
      let text = (try? String(contentsOf: errors, encoding: .utf8)) ?? ""
      let tail = text.split(separator: "\n").suffix(12).joined(separator: "\n")
      throw ParallelError.mpiFailed("\(mpirun) exited with status \(process.terminationStatus): \(tail)")
    }
    return String(decoding: data, as: UTF8.self)
  }
}
