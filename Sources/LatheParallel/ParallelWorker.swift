// The worker process (`lathe worker`): loads a model once and keeps it, then runs one chunk of a parallel prefill
// per request on one compute thread. Between processes, a layer's keys and values go through the shared region: a
// sender copies rows into the receiver's cache segment and posts the receiver's semaphore for that layer (a
// process-shared POSIX semaphore in the region); a send never blocks, only a receiver waits.

import CLinux
import Foundation
import LatheModels

public enum ParallelWorker {
  /// How long a process waits for one layer from another before it gives up.
  static let waitLimitSeconds = 600

  /// Serves requests on the control socket `fd` until the parent closes it; returns the exit status. The worker
  /// dies with `parent` (PR_SET_PDEATHSIG), and exits at once when `parent` is already gone. `formats` reads a
  /// compressed model's packed matrices (a compressed model reaches the workers as a packed GGUF file).
  public static func run(fd: Int32, parent: Int32, formats: CompressedFormats = .none) -> Int32 {
    _ = lathe_set_parent_death_signal(SIGKILL)
    guard getppid() == parent else { return 1 }
    let channel = Channel(fd: fd)
    var model: LlamaModel?
    var region: SharedRegion?
    while true {
      let kind: MessageKind, reader: FrameReader
      do { (kind, reader) = try channel.receive() }
      catch is Channel.Closed { return 0 }
      catch { _ = try? channel.send(.failure, message("\(error)")); return 2 }
      var r = reader
      do {
        switch kind {
        case .load:
          let path = try r.string("path")
          try r.finish("a load request")
          model = nil
          let m = try LlamaModel(path: path, formats: formats)
          m.threads = 1
          model = m
          var w = FrameWriter()
          w.int(Int(getpid()))
          try channel.send(.ready, w)
        case .prefill:
          let request = try PrefillRequest(&r)
          guard let model else { throw ParallelError.invalidPlan("no model is loaded") }
          let widths = model.config.kvHeadCounts.map { $0 * model.config.headDimension }
          try request.validate(widths: widths)
          if region?.path != request.regionPath || region?.byteCount != request.regionBytes {
            region = nil
            region = try SharedRegion(opening: request.regionPath, byteCount: request.regionBytes)
          }
          var chunk = ChunkRun(request: request, region: region!, widths: widths)
          let reply = try chunk.run(model)
          try channel.send(.done, reply.encoded())
        case .ready, .done, .failure:
          throw ParallelError.malformedFrame("a worker does not take \(kind) messages")
        }
      } catch is Channel.Closed {
        return 0
      } catch {
        do { try channel.send(.failure, message("\(error)")) } catch { return 2 }
      }
    }
  }

  static func message(_ text: String) -> FrameWriter { var w = FrameWriter(); w.string(text); return w }
}

/// One process's part of a parallel prefill: its chunk forward, with the exchange of every layer's keys and values.
struct ChunkRun {
  let request: PrefillRequest, region: SharedRegion, widths: [Int]
  let index: Int, procs: Int, layers: Int
  /// S_{i-1} and S_i: where this chunk starts and ends.
  let start: Int, end: Int, total: Int
  var events: [PrefillEvent] = []
  var bytesSent = 0
  var mark: UInt64 = 0

  init(request: PrefillRequest, region: SharedRegion, widths: [Int]) {
    self.request = request; self.region = region; self.widths = widths
    index = request.index; procs = request.chunks.count; layers = widths.count
    start = request.chunks[..<index].reduce(0, +); end = start + request.chunks[index]; total = request.chunks.reduce(0, +)
  }

  func keys(_ process: Int, _ layer: Int) -> UnsafeMutablePointer<Float> {
    (region.base + request.keyOffsets[process * layers + layer]).assumingMemoryBound(to: Float.self)
  }
  func values(_ process: Int, _ layer: Int) -> UnsafeMutablePointer<Float> {
    (region.base + request.valueOffsets[process * layers + layer]).assumingMemoryBound(to: Float.self)
  }
  func semaphore(_ process: Int, _ layer: Int) -> UnsafeMutablePointer<sem_t> {
    (region.base + request.semaphoreOffsets[process * layers + layer]).assumingMemoryBound(to: sem_t.self)
  }

  func seconds(_ t: UInt64) -> Double { Double(Int64(bitPattern: t &- UInt64(request.epoch))) / 1e9 }

  mutating func record(_ kind: PrefillEvent.Kind, _ layer: Int, from t0: UInt64) -> UInt64 {
    let now = monotonicNanoseconds()
    events.append(PrefillEvent(kind: kind, layer: layer, start: seconds(t0), end: seconds(now)))
    return now
  }

  mutating func run(_ model: LlamaModel) throws -> PrefillReply {
    mark = monotonicNanoseconds()
    let logits = try model.forwardChunk(request.tokens, offset: start, logits: request.wantLogits) { l, k, v in
      try exchange(layer: l, keys: k, values: v)
    }
    _ = record(.compute, layers, from: mark)
    return PrefillReply(events: events, bytesSent: bytesSent, logits: logits)
  }

  /// Writes the chunk's rows into this process's segment, then passes keys and values on as the method says.
  mutating func exchange(layer l: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>) throws -> ChunkAttentionInput {
    var now = record(.compute, l, from: mark)
    let w = widths[l], own = end - start
    let myKeys = keys(index, l), myValues = values(index, l)
    (myKeys + start * w).update(from: k, count: own * w)
    (myValues + start * w).update(from: v, count: own * w)
    let length: Int
    switch request.method {
    case .runahead:
      // Wait for rows 0..<S_{i-1} from i-1, then forward all of 0..<S_i to i+1 (never waiting on it).
      if index > 0 {
        try wait(semaphore(index, l), from: index - 1, layer: l)
        now = record(.wait, l, from: now)
      }
      if index < procs - 1 {
        keys(index + 1, l).update(from: myKeys, count: end * w)
        values(index + 1, l).update(from: myValues, count: end * w)
        sem_post(semaphore(index + 1, l))
        bytesSent += 2 * end * w * 4
        now = record(.send, l, from: now)
      }
      length = end
    case .tsp:
      // All-gather: the chunk's rows to every other process, then wait until every other chunk has arrived.
      for j in 0..<procs where j != index {
        (keys(j, l) + start * w).update(from: k, count: own * w)
        (values(j, l) + start * w).update(from: v, count: own * w)
        sem_post(semaphore(j, l))
        bytesSent += 2 * own * w * 4
      }
      if procs > 1 { now = record(.send, l, from: now) }
      for j in 0..<procs where j != index { try wait(semaphore(index, l), from: j, layer: l) }
      if procs > 1 { now = record(.wait, l, from: now) }
      length = total
    }
    mark = now
    return ChunkAttentionInput(keys: myKeys, values: myValues, length: length)
  }

  func wait(_ s: UnsafeMutablePointer<sem_t>, from process: Int, layer: Int) throws {
    var deadline = timespec()
    clock_gettime(CLOCK_REALTIME, &deadline)
    deadline.tv_sec += ParallelWorker.waitLimitSeconds
    while sem_timedwait(s, &deadline) != 0 {
      if errno == EINTR { continue }
      if errno == ETIMEDOUT {
        throw ParallelError.invalidPlan("process \(index) waited \(ParallelWorker.waitLimitSeconds) s for layer \(layer) from process \(process)")
      }
      throw ParallelError.posix("sem_timedwait", "waiting for layer \(layer)")
    }
  }
}
