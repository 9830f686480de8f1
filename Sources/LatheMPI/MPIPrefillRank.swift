// One Open MPI rank of a parallel prefill (the `lathe-mpi` executable, started by mpirun): loads the model, runs
// its chunk through `forwardChunk`, and exchanges every layer's keys and values with MPI. Runahead: rank i receives
// rows 0..<S_{i-1} from rank i-1 (MPI_Recv, before attention) and sends rows 0..<S_i to rank i+1 (MPI_Isend: the
// sender never waits; its requests are completed at the end). Tsp: MPI_Allgatherv of every chunk's rows. Only the
// n_kv heads travel. The last rank gathers every rank's timeline and prints the answer (MPIPrefillResult).

import CMPI
import Foundation
import LatheModels
import LatheParallel
import LatheTechniques

public enum MPIPrefillRank {
  /// Runs one rank of the job in `arguments`; returns the exit status. On an error the rank says so on standard
  /// error and aborts the whole job (MPI_Abort), so that no rank waits forever on it.
  public static func main(arguments: [String]) -> Int32 {
    guard MPI_Init(nil, nil) == MPI_SUCCESS else {
      FileHandle.standardError.write(Data("lathe-mpi: MPI_Init failed\n".utf8))
      return 2
    }
    let world = lathe_mpi_comm_world()
    MPI_Comm_set_errhandler(world, lathe_mpi_errors_return())
    var rank: Int32 = 0, size: Int32 = 0
    MPI_Comm_rank(world, &rank); MPI_Comm_size(world, &size)
    do {
      // The token ids: rank 0 reads them from standard input (mpirun forwards it there) and broadcasts them.
      let count = try MPIPrefillJob.tokenCount(arguments: arguments)
      var ids = [Int32](repeating: 0, count: count)
      if rank == 0 {
        let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        ids = try MPIPrefillJob.tokens(text: text, count: count).map { Int32(clamping: $0) }
      }
      try check(MPI_Bcast(&ids, Int32(count), lathe_mpi_int(), 0, world), "the broadcast of the token ids")
      let job = try MPIPrefillJob(arguments: arguments, tokens: ids.map(Int.init))
      guard Int(size) == job.chunks.count else {
        throw ParallelError.invalidPlan("lathe-mpi: \(size) ranks for \(job.chunks.count) chunks")
      }
      let model = try LlamaModel(path: job.modelPath, formats: Techniques.formats)
      model.threads = 1
      var run = try MPIChunkRun(job: job, rank: Int(rank), config: model.config)
      defer { run.release() }
      try check(MPI_Barrier(world), "the barrier before the start")
      try run.run(model)
      try run.report()
      MPI_Finalize()
      return 0
    } catch {
      FileHandle.standardError.write(Data("lathe-mpi: rank \(rank): \(error)\n".utf8))
      MPI_Abort(world, 2)
      return 2
    }
  }

  static func check(_ code: Int32, _ what: String) throws {
    guard code != MPI_SUCCESS else { return }
    var text = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1), length: Int32 = 0
    MPI_Error_string(code, &text, &length)
    throw ParallelError.invalidPlan("MPI failed in \(what): \(String(cString: text))")
  }
}

/// One rank's chunk: its keys and values per layer (S_i rows for runahead, C for tsp), timeline and requests.
struct MPIChunkRun {
  let job: MPIPrefillJob, rank: Int, procs: Int, widths: [Int]
  let start: Int, end: Int, total: Int
  let world = lathe_mpi_comm_world()
  var keys: [UnsafeMutablePointer<Float>] = [], values: [UnsafeMutablePointer<Float>] = []
  var requests: [MPI_Request?] = []
  var events: [PrefillEvent] = []
  var bytesSent = 0
  var epoch: UInt64 = 0, mark: UInt64 = 0
  var logits: [Float] = []
  var ttft = 0.0, finished = 0.0

  init(job: MPIPrefillJob, rank: Int, config: LlamaConfig) throws {
    self.job = job; self.rank = rank; procs = job.chunks.count
    widths = config.kvHeadCounts.map { $0 * config.headDimension }
    start = job.chunks[..<rank].reduce(0, +); end = start + job.chunks[rank]; total = job.tokens.count
    guard total <= config.contextLength else { throw ParallelError.invalidPlan("\(total) tokens exceed the model's context of \(config.contextLength)") }
    let rows = job.method == .runahead ? end : total
    for w in widths {
      keys.append(.allocate(capacity: rows * w)); values.append(.allocate(capacity: rows * w))
    }
  }

  func release() { for p in keys + values { p.deallocate() } }

  func seconds(_ t: UInt64) -> Double { Double(t &- epoch) / 1e9 }

  mutating func record(_ kind: PrefillEvent.Kind, _ layer: Int, from t0: UInt64) -> UInt64 {
    let now = monotonicNanoseconds()
    events.append(PrefillEvent(kind: kind, layer: layer, start: seconds(t0), end: seconds(now)))
    return now
  }

  mutating func run(_ model: LlamaModel) throws {
    epoch = monotonicNanoseconds(); mark = epoch
    let last = rank == procs - 1
    logits = try model.forwardChunk(job.tokens[start..<end], offset: start, logits: last) { l, k, v in
      try exchange(layer: l, keys: k, values: v)
    }
    mark = record(.compute, widths.count, from: mark)
    ttft = seconds(mark)
    // Complete the sends: the buffers stay untouched until then.
    if !requests.isEmpty {
      try MPIPrefillRank.check(MPI_Waitall(Int32(requests.count), &requests, lathe_mpi_statuses_ignore()), "waiting for the sends")
      mark = record(.send, widths.count, from: mark)
    }
    finished = seconds(monotonicNanoseconds())
  }

  mutating func exchange(layer l: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) throws -> ChunkAttentionInput {
    var now = record(.compute, l, from: mark)
    let w = widths[l], own = end - start
    (keys[l] + start * w).update(from: k, count: own * w)
    (values[l] + start * w).update(from: v, count: own * w)
    let float = lathe_mpi_float(), length: Int
    switch job.method {
    case .runahead:
      if rank > 0 {
        try MPIPrefillRank.check(MPI_Recv(keys[l], Int32(start * w), float, Int32(rank - 1), Int32(2 * l), world, lathe_mpi_status_ignore()),
                                 "receiving layer \(l)'s keys from rank \(rank - 1)")
        try MPIPrefillRank.check(MPI_Recv(values[l], Int32(start * w), float, Int32(rank - 1), Int32(2 * l + 1), world, lathe_mpi_status_ignore()),
                                 "receiving layer \(l)'s values from rank \(rank - 1)")
        now = record(.wait, l, from: now)
      }
      if rank < procs - 1 {
        var sendKeys: MPI_Request? = nil, sendValues: MPI_Request? = nil
        try MPIPrefillRank.check(MPI_Isend(keys[l], Int32(end * w), float, Int32(rank + 1), Int32(2 * l), world, &sendKeys),
                                 "sending layer \(l)'s keys to rank \(rank + 1)")
        try MPIPrefillRank.check(MPI_Isend(values[l], Int32(end * w), float, Int32(rank + 1), Int32(2 * l + 1), world, &sendValues),
                                 "sending layer \(l)'s values to rank \(rank + 1)")
        requests += [sendKeys, sendValues]
        bytesSent += 2 * end * w * 4
        now = record(.send, l, from: now)
      }
      length = end
    case .tsp:
      // In place: this rank's rows already sit at their offset; every rank's chunk goes to every other rank.
      var counts: [Int32] = [], offsets: [Int32] = []
      var at = 0
      for c in job.chunks { counts.append(Int32(c * w)); offsets.append(Int32(at * w)); at += c }
      try MPIPrefillRank.check(MPI_Allgatherv(lathe_mpi_in_place(), 0, float, keys[l], counts, offsets, float, world),
                               "all-gathering layer \(l)'s keys")
      try MPIPrefillRank.check(MPI_Allgatherv(lathe_mpi_in_place(), 0, float, values[l], counts, offsets, float, world),
                               "all-gathering layer \(l)'s values")
      bytesSent += 2 * own * w * 4 * (procs - 1)
      now = record(.wait, l, from: now)
      length = total
    }
    mark = now
    return ChunkAttentionInput(keys: keys[l], values: values[l], length: length)
  }

  /// Gathers every rank's timeline on the last rank, which prints the answer with its cache and logits.
  func report() throws {
    var w = FrameWriter()
    PrefillEvent.encode(events, into: &w)
    w.int(bytesSent); w.double(finished)
    var mine = w.bytes
    let root = Int32(procs - 1), isRoot = rank == procs - 1
    var size = Int32(mine.count)
    var sizes = [Int32](repeating: 0, count: isRoot ? procs : 1)
    try MPIPrefillRank.check(MPI_Gather(&size, 1, lathe_mpi_int(), &sizes, 1, lathe_mpi_int(), root, world), "gathering the timelines' sizes")
    var offsets = [Int32](repeating: 0, count: sizes.count)
    for i in sizes.indices.dropFirst() { offsets[i] = offsets[i - 1] + sizes[i - 1] }
    var all = [UInt8](repeating: 0, count: isRoot ? Int(sizes.reduce(0, +)) : 1)
    try MPIPrefillRank.check(MPI_Gatherv(&mine, size, lathe_mpi_byte(), &all, sizes, offsets, lathe_mpi_byte(), root, world),
                             "gathering the timelines")
    guard isRoot else { return }
    var timelines: [[PrefillEvent]] = [], sent: [Int] = [], ends: [Double] = []
    for i in 0..<procs {
      var r = FrameReader(Array(all[Int(offsets[i])..<Int(offsets[i] + sizes[i])]))
      timelines.append(try PrefillEvent.decode(&r))
      sent.append(try r.int("bytes sent")); ends.append(try r.double("finished"))
      try r.finish("rank \(i)'s timeline")
    }
    let result = MPIPrefillResult(events: timelines, bytesSent: sent, finished: ends, ttft: ttft, logits: logits,
                                  keys: widths.indices.map { Array(UnsafeBufferPointer(start: keys[$0], count: total * widths[$0])) },
                                  values: widths.indices.map { Array(UnsafeBufferPointer(start: values[$0], count: total * widths[$0])) })
    let text = MPIPrefillResult.marker + Data(result.encoded().bytes).base64EncodedString() + "\n"
    FileHandle.standardOutput.write(Data(text.utf8))
  }
}
