// The control protocol's frames and the partition helpers: round trips, strictness on malformed input, and the
// spec's byte and MAC formulas (kv-runahead.md checks 2 and 3).

import Foundation
import Testing
@testable import LatheModels
@testable import LatheParallel

@Test func framesRoundTripThroughASocket() throws {
  var fds: [Int32] = [-1, -1]
  #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0)
  let a = Channel(fd: fds[0]), b = Channel(fd: fds[1])
  let request = PrefillRequest(method: .tsp, index: 1, chunks: [3, 2], tokens: [7, 8], regionPath: "/dev/shm/x", regionBytes: 4096,
                               keyOffsets: [64, 128], valueOffsets: [192, 256], semaphoreOffsets: [0, 64], rows: [5, 5],
                               epoch: 123_456_789, wantLogits: true)
  try a.send(.prefill, request.encoded())
  let (kind, reader) = try b.receive()
  var r = reader
  #expect(kind == .prefill)
  #expect(try PrefillRequest(&r) == request)
  let reply = PrefillReply(events: [PrefillEvent(kind: .wait, layer: 3, start: 0.25, end: 0.5)], bytesSent: 1536, logits: [1, -2.5, 3])
  try b.send(.done, reply.encoded())
  var r2 = try a.receive().1
  let back = try PrefillReply(&r2)
  #expect(back.events == reply.events && back.bytesSent == 1536 && back.logits == [1, -2.5, 3])
}

@Test func malformedFramesAreErrors() throws {
  func deliver(_ bytes: [UInt8]) throws -> (MessageKind, FrameReader) {
    var fds: [Int32] = [-1, -1]
    #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
    let receiver = Channel(fd: fds[1])
    _ = bytes.withUnsafeBytes { write(fds[0], $0.baseAddress, $0.count) }
    close(fds[0])
    return try receiver.receive()
  }
  #expect(throws: ParallelError.self) { try deliver([0, 0, 0, 0]) }                      // length 0
  #expect(throws: ParallelError.self) { try deliver([0xff, 0xff, 0xff, 0x7f, 1]) }        // over 256 MiB
  #expect(throws: ParallelError.self) { try deliver([1, 0, 0, 0, 99]) }                   // unknown kind
  #expect(throws: Channel.Closed.self) { try deliver([9, 0, 0, 0, 1, 2]) }                // cut short: the peer died
  #expect(throws: Channel.Closed.self) { try deliver([]) }                                // EOF between frames
  // A payload whose fields run past the frame, or leave bytes over.
  var w = FrameWriter(); w.string("tsp"); w.int(0)
  var r = FrameReader(w.bytes)
  #expect(throws: ParallelError.self) { try PrefillRequest(&r) }
  var huge = FrameReader([0xff, 0xff, 0xff, 0xff])
  #expect(throws: ParallelError.self) { try huge.floats() }
  var extra = FrameWriter(); extra.string("/x"); extra.int(1)
  var r3 = FrameReader(extra.bytes)
  _ = try r3.string()
  #expect(throws: ParallelError.self) { try r3.finish("a load request") }
}

@Test func requestsReachingOutsideTheRegionAreRejected() throws {
  let good = PrefillRequest(method: .runahead, index: 0, chunks: [2, 1], tokens: [1, 2], regionPath: "/x", regionBytes: 4096,
                            keyOffsets: [128, 512], valueOffsets: [256, 1024], semaphoreOffsets: [0, 64], rows: [2, 3],
                            epoch: 0, wantLogits: false)
  try good.validate(widths: [8])
  var bad = good; bad.keyOffsets = [4090, 512]
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  bad = good; bad.rows = [1, 3]
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  bad = good; bad.tokens = [1]
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  bad = good; bad.semaphoreOffsets = [0, 4095]
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  // Sizes that would overflow the layout arithmetic are malformed frames, not traps (the worker replies a failure).
  bad = good; bad.chunks = [Int.max, 1]
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  bad = good; bad.chunks = [2, Int.max]; bad.index = 1
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  bad = good; bad.rows = [Int.max, Int.max]
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  bad = good; bad.regionBytes = Int.min
  #expect(throws: ParallelError.self) { try bad.validate(widths: [8]) }
  #expect(throws: ParallelError.self) { try good.validate(widths: [Int.max / 2]) }
}

@Test func partitionsMapToChunkSizes() throws {
  #expect(try PrefillPartition.even(tokens: 10, procs: 3) == [4, 3, 3])
  #expect(try PrefillPartition.sizes(fractions: [0.7, 0.3], tokens: 100) == [70, 30])
  #expect(try PrefillPartition.sizes(fractions: [0.98, 0.01, 0.01], tokens: 10) == [8, 1, 1])
  // One rounding rule: chunk i ends at round(C·(f_0+…+f_i)), half to even; fractions are scaled to sum to 1.
  #expect(try PrefillPartition.sizes(fractions: [1.0 / 3, 1.0 / 3, 1.0 / 3], tokens: 10) == [3, 4, 3])
  #expect(try PrefillPartition.sizes(fractions: [0.25, 0.25, 0.25, 0.25], tokens: 10) == [2, 3, 3, 2])
  #expect(try PrefillPartition.sizes(fractions: [5, 5], tokens: 9) == [4, 5])
  #expect(throws: ParallelError.self) { try PrefillPartition.sizes(fractions: [0.5, -0.1], tokens: 10) }
  #expect(throws: ParallelError.self) { try PrefillPartition.sizes(fractions: [0, 0], tokens: 10) }
  #expect(throws: ParallelError.self) { try PrefillPartition.even(tokens: 2, procs: 3) }
  #expect(throws: ParallelError.self) { try PrefillPartition.even(tokens: 2, procs: 0) }
  #expect(throws: ParallelError.self) { try PrefillPartition.check([5, 0, 5], tokens: 10) }
  #expect(throws: ParallelError.self) { try PrefillPartition.check([5, 4], tokens: 10) }
  // Bytes per process, one formula for every prefill value: a prefix each for runahead, p−1 copies of a chunk for tsp.
  #expect(PrefillPartition.bytesPerProcess(.runahead, chunks: [3, 2, 5], bytesPerToken: 10) == [30, 50, 0])
  #expect(PrefillPartition.bytesPerProcess(.tsp, chunks: [3, 2, 5], bytesPerToken: 10) == [60, 40, 100])
}

@Test func runaheadMovesHalfTheBytesOfTSPOnEvenChunksAndFewerMACs() throws {
  let config = try LlamaConfig(vocabularySize: 16, dimension: 576, contextLength: 8192, headCounts: Array(repeating: 9, count: 30),
                               kvHeadCounts: Array(repeating: 3, count: 30), ffnWidths: Array(repeating: 1536, count: 30), headDimension: 64)
  let bkv = 2 * 3 * 64 * 4
  for p in 2...4 {
    let chunks = try PrefillPartition.even(tokens: 1200, procs: p)
    let kvr = PrefillPartition.bytesSent(.runahead, chunks: chunks, config: config)
    let tsp = PrefillPartition.bytesSent(.tsp, chunks: chunks, config: config)
    #expect(tsp == 30 * bkv * (p - 1) * 1200)
    #expect(2 * kvr == tsp, "p \(p): runahead \(kvr), tsp \(tsp)")
    #expect(PrefillPartition.attentionMACs(.runahead, chunks: chunks, config: config)
            < PrefillPartition.attentionMACs(.tsp, chunks: chunks, config: config))
  }
  #expect(PrefillPartition.attentionMACs(.runahead, chunks: [1024], config: config) == 30 * 2 * 9 * 64 * 1024 * 1024)
  #expect(PrefillPartition.attentionMACs(.runahead, chunks: [1024], config: config)
          == PrefillPartition.attentionMACs(.tsp, chunks: [1024], config: config))
}

/// The partition arithmetic at Int's edges: sizes and fractions that overflow a sum or a product are errors.
@Test func partitionArithmeticAtIntsEdgesIsAnError() throws {
  #expect(throws: ParallelError.self) { try PrefillPartition.check([Int.max, Int.max], tokens: 10) }
  #expect(throws: ParallelError.self) { try PrefillPartition.check([Int.max, 1], tokens: Int.min) }
  #expect(throws: ParallelError.self) { try PrefillPartition.even(tokens: Int.max, procs: Int.max) }
  #expect(throws: ParallelError.self) { try PrefillPartition.even(tokens: 10, procs: Int.min) }
  #expect(throws: ParallelError.self) { try PrefillPartition.sizes(fractions: [.infinity, 1], tokens: 10) }
  #expect(throws: ParallelError.self) { try PrefillPartition.sizes(fractions: [.nan, 1], tokens: 10) }
  #expect(throws: ParallelError.self) { try PrefillPartition.sizes(fractions: [1e308, 1e308], tokens: 10) }
  // A prompt of Int.max tokens is split without trapping (2^63 as a Double is past Int's range).
  #expect(try PrefillPartition.sizes(fractions: [1, 0, 0], tokens: Int.max) == [Int.max - 2, 1, 1])
  #expect(try PrefillPartition.sizes(fractions: [0.5, 0.5], tokens: Int.max).reduce(0, &+) == Int.max)
  #expect(throws: ParallelError.self) { try PrefillPartition.even(tokens: 1 << 40, procs: 1 << 20) }
}

/// A worker answers a malformed or misdirected frame with a failure frame and goes on serving: the frame that
/// follows (a load of a missing file) gets its own failure, naming the path.
@Test(arguments: [0, 1, 2, 3])
func aWorkerAnswersMalformedFramesWithAFailure(case number: Int) throws {
  let worker = try WorkerProcess.spawn(slot: 0, executable: try WorkerProcess.executable(), budget: 1 << 30)
  defer { worker.finish(within: 1) }
  var payload = FrameWriter()
  let kind: MessageKind
  switch number {
  case 0: payload.string("not a method"); kind = .prefill              // an unknown prefill method
  case 1: payload.int(7); kind = .prefill                              // a field cut short
  case 2: kind = .done                                                 // a message only a worker sends
  default:                                                             // a well-formed request with no model loaded
    let request = PrefillRequest(method: .runahead, index: 0, chunks: [1], tokens: [1], regionPath: "/x", regionBytes: 0,
                                 keyOffsets: [], valueOffsets: [], semaphoreOffsets: [], rows: [1], epoch: 0, wantLogits: false)
    payload = request.encoded(); kind = .prefill
  }
  try worker.channel.send(kind, payload)
  var (reply, reader) = try worker.channel.receive()
  #expect(reply == .failure)
  #expect(!(try reader.string("message")).isEmpty)
  var load = FrameWriter()
  load.string("/nonexistent/model.gguf")
  try worker.channel.send(.load, load)
  (reply, reader) = try worker.channel.receive()
  #expect(reply == .failure)
  #expect(try reader.string("message").contains("/nonexistent/model.gguf"))
}
