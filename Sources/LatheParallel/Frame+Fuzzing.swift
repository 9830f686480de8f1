// The worker protocol under a fuzzer (LatheFuzzing's `frames` target): arbitrary bytes arrive on a control socket
// as the worker would read them, and every frame is decoded as each message it could be. A frame must end as a
// message or a ParallelError; a prefill request that passes `validate` must keep every cache row and semaphore
// inside its region, which is what makes the worker's pointer arithmetic safe.

import Foundation

package enum FrameFuzzing {
  /// Why a checked property failed: the fuzzer turns it into a crash, a test into a failure.
  package struct Finding: Error, CustomStringConvertible {
    package let description: String
  }

  /// The layer widths (floats per cache row) of the model the fuzzed worker holds: three layers of unequal width.
  static let widths = [64, 192, 32]

  /// Feeds `bytes` through a socket pair into `Channel.receive` and checks each frame it yields.
  package static func check(_ bytes: [UInt8]) throws {
    var fds: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else { return }
    let reader = Channel(fd: fds[0]), writeEnd = fds[1]
    // The writer runs on its own thread: a socket buffer holds less than a large input.
    let written = DispatchSemaphore(value: 0)
    let writer = Thread {
      bytes.withUnsafeBytes { raw in
        var sent = 0
        while sent < raw.count, let base = raw.baseAddress {
          let n = Glibc.send(writeEnd, base + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
          if n < 0 { if errno == EINTR { continue }; break }
          sent += n
        }
      }
      close(writeEnd)
      written.signal()
    }
    writer.start()
    defer {
      // Drain what is left so the writer can finish, then let the reader close its end.
      var sink = [UInt8](repeating: 0, count: 1 << 16)
      while read(reader.fd, &sink, sink.count) > 0 {}
      written.wait()
      withExtendedLifetime(reader) {}
    }
    var frames = 0
    while frames < 64 {
      let kind: MessageKind, payload: FrameReader
      do { (kind, payload) = try reader.receive() } catch is Channel.Closed { break } catch is ParallelError { break }
      frames += 1
      try checkFrame(kind, payload)
    }
  }

  static func checkFrame(_ kind: MessageKind, _ payload: FrameReader) throws {
    var r = payload
    switch kind {
    case .load:
      _ = try? r.string("path"); _ = try? r.finish("a load request")
    case .ready:
      _ = try? r.int("pid"); _ = try? r.finish("a ready reply")
    case .failure:
      _ = try? r.string("message")
    case .done:
      do { _ = try PrefillReply(&r) } catch is ParallelError {}
    case .prefill:
      let request: PrefillRequest
      do { request = try PrefillRequest(&r) } catch is ParallelError { return }
      do { try request.validate(widths: widths) } catch is ParallelError { return }
      try checkLayout(request)
    }
  }

  /// What `validate` promises: every process's keys and values for every layer, `rows` rows wide, and every
  /// semaphore lie inside the region, and this process's chunk lies inside the prompt.
  static func checkLayout(_ request: PrefillRequest) throws {
    let p = request.chunks.count, layers = widths.count
    func fail(_ what: String) -> Finding { Finding(description: "a validated request puts \(what) outside its region: \(request)") }
    for j in 0..<p {
      for l in 0..<layers {
        let size = request.rows[j] * widths[l] * 4, at = j * layers + l
        for offset in [request.keyOffsets[at], request.valueOffsets[at]] where offset < 0 || offset + size > request.regionBytes {
          throw fail("the cache of process \(j), layer \(l)")
        }
        let s = request.semaphoreOffsets[at]
        if s < 0 || s + MemoryLayout<sem_t>.size > request.regionBytes { throw fail("a semaphore") }
      }
    }
    let start = request.chunks[..<request.index].reduce(0, +)
    if start < 0 || start + request.chunks[request.index] > request.chunks.reduce(0, +) { throw fail("the chunk") }
  }
}

extension FrameFuzzing {
  /// Valid traffic to start from: a load request, a prefill request of two processes over three layers (laid out
  /// as the pool lays it out), a ready reply and a done reply, each a whole frame.
  package static let seeds: [[UInt8]] = {
    func frame(_ kind: MessageKind, _ payload: FrameWriter) -> [UInt8] {
      let length = UInt32(payload.bytes.count + 1)
      return withUnsafeBytes(of: length.littleEndian) { Array($0) } + [kind.rawValue] + payload.bytes
    }
    var load = FrameWriter(); load.string("models/tiny.gguf")
    let chunks = [3, 2], rows = [3, 5], layers = widths.count
    var keys: [Int] = [], values: [Int] = [], semaphores: [Int] = [], offset = 0
    for j in 0..<chunks.count {
      for l in 0..<layers {
        keys.append(offset); offset += rows[j] * widths[l] * 4
        values.append(offset); offset += rows[j] * widths[l] * 4
      }
    }
    offset = (offset + 15) / 16 * 16
    for _ in 0..<(chunks.count * layers) { semaphores.append(offset); offset += 32 }
    let request = PrefillRequest(method: .runahead, index: 1, chunks: chunks, tokens: [5, 9], regionPath: "/lathe-fuzz",
                                 regionBytes: offset, keyOffsets: keys, valueOffsets: values, semaphoreOffsets: semaphores,
                                 rows: rows, epoch: 12345, wantLogits: true)
    var ready = FrameWriter(); ready.int(4242)
    let reply = PrefillReply(events: [PrefillEvent(kind: .compute, layer: 0, start: 0, end: 0.5)], bytesSent: 96, logits: [0.5, -1])
    return [frame(.load, load) + frame(.prefill, request.encoded()), frame(.ready, ready) + frame(.done, reply.encoded())]
  }()
}
