// The control protocol between the parent and its workers: frames of [u32 length][u8 kind][payload] over a
// Unix-domain stream socket, payloads of little-endian integers, doubles, strings and arrays. Strict: a length of 0
// or over 256 MiB, an unknown kind, a field running past its frame or bytes left over are errors, never a crash.

import Foundation

enum MessageKind: UInt8 {
  /// parent → worker: load the model file at a path.
  case load = 1
  /// worker → parent: the model is loaded (pid).
  case ready = 2
  /// parent → worker: run one chunk of a parallel prefill (PrefillRequest).
  case prefill = 3
  /// worker → parent: the chunk is done (PrefillReply).
  case done = 4
  /// worker → parent: the request failed (message).
  case failure = 5
}

/// Builds one frame's payload.
package struct FrameWriter {
  package init() {}
  package private(set) var bytes: [UInt8] = []

  package mutating func int(_ v: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { bytes.append(contentsOf: $0) } }
  package mutating func double(_ v: Double) { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
  package mutating func string(_ s: String) { let u = Array(s.utf8); count(u.count); bytes += u }
  package mutating func ints(_ v: [Int]) { count(v.count); for x in v { int(x) } }
  package mutating func doubles(_ v: [Double]) { count(v.count); for x in v { double(x) } }
  package mutating func floats(_ v: [Float]) {
    count(v.count)
    v.withUnsafeBytes { bytes.append(contentsOf: $0) }   // every platform Lathe builds for is little-endian
  }
  private mutating func count(_ n: Int) { withUnsafeBytes(of: UInt32(n).littleEndian) { bytes.append(contentsOf: $0) } }
}

/// Reads one frame's payload; every read checks the bytes are there.
package struct FrameReader {
  let bytes: [UInt8]
  private(set) var position = 0
  package init(_ bytes: [UInt8]) { self.bytes = bytes }

  private mutating func take(_ n: Int, _ what: String) throws -> ArraySlice<UInt8> {
    guard n >= 0, n <= bytes.count - position else {
      throw ParallelError.malformedFrame("\(what) needs \(n) bytes at offset \(position) of a \(bytes.count)-byte payload")
    }
    defer { position += n }
    return bytes[position..<(position + n)]
  }
  private mutating func raw64(_ what: String) throws -> UInt64 {
    try take(8, what).reversed().reduce(0) { $0 << 8 | UInt64($1) }
  }
  private mutating func count(_ what: String, elementSize: Int) throws -> Int {
    let n = Int(try take(4, what).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    guard n <= (bytes.count - position) / elementSize else {
      throw ParallelError.malformedFrame("\(what) claims \(n) elements, more than the \(bytes.count - position) bytes left")
    }
    return n
  }

  package mutating func int(_ what: String = "int") throws -> Int { Int(Int64(bitPattern: try raw64(what))) }
  package mutating func double(_ what: String = "double") throws -> Double { Double(bitPattern: try raw64(what)) }
  package mutating func string(_ what: String = "string") throws -> String {
    let n = try count(what, elementSize: 1)
    guard let s = String(validating: try take(n, what), as: UTF8.self) else { throw ParallelError.malformedFrame("\(what) is not UTF-8") }
    return s
  }
  package mutating func ints(_ what: String = "ints") throws -> [Int] {
    let n = try count(what, elementSize: 8)
    return try (0..<n).map { _ in try int(what) }
  }
  package mutating func doubles(_ what: String = "doubles") throws -> [Double] {
    let n = try count(what, elementSize: 8)
    return try (0..<n).map { _ in try double(what) }
  }
  package mutating func floats(_ what: String = "floats") throws -> [Float] {
    let n = try count(what, elementSize: 4)
    let slice = try take(4 * n, what)
    return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
      slice.withUnsafeBytes { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: $0) }
      initialized = n
    }
  }
  /// Every byte must have been read.
  package func finish(_ what: String) throws {
    guard position == bytes.count else { throw ParallelError.malformedFrame("\(bytes.count - position) bytes left over after \(what)") }
  }
}

/// One end of a control socket; owns the descriptor.
final class Channel {
  static let maximumFrame = 256 << 20
  let fd: Int32
  init(fd: Int32) { self.fd = fd }
  deinit { close(fd) }

  /// Thrown by `receive` when the other end closed the socket between frames.
  struct Closed: Error {}

  func send(_ kind: MessageKind, _ payload: FrameWriter = FrameWriter()) throws {
    let length = payload.bytes.count + 1
    guard length <= Channel.maximumFrame else { throw ParallelError.malformedFrame("a \(length)-byte frame exceeds the 256 MiB limit") }
    var frame = [UInt8]()
    frame.reserveCapacity(length + 4)
    withUnsafeBytes(of: UInt32(length).littleEndian) { frame.append(contentsOf: $0) }
    frame.append(kind.rawValue)
    frame += payload.bytes
    try frame.withUnsafeBytes { buffer in
      var sent = 0
      while sent < buffer.count {
        // MSG_NOSIGNAL: a dead peer gives EPIPE here instead of killing this process with SIGPIPE.
        let n = Glibc.send(fd, buffer.baseAddress! + sent, buffer.count - sent, Int32(MSG_NOSIGNAL))
        if n < 0 {
          if errno == EINTR { continue }
          if errno == EPIPE || errno == ECONNRESET { throw Closed() }
          throw ParallelError.posix("send", "writing a \(kind) frame")
        }
        sent += n
      }
    }
  }

  func receive() throws -> (MessageKind, FrameReader) {
    var header = [UInt8](repeating: 0, count: 4)
    guard try read(into: &header, atFrameStart: true) else { throw Closed() }
    let length = Int(header.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    guard length >= 1, length <= Channel.maximumFrame else { throw ParallelError.malformedFrame("frame length \(length) is not in 1...\(Channel.maximumFrame)") }
    // Read in pieces of at most 1 MiB: a length claimed in a header costs memory only as its bytes arrive.
    var body: [UInt8] = []
    var piece = [UInt8]()
    while body.count < length {
      let n = min(length - body.count, 1 << 20)
      if piece.count != n { piece = [UInt8](repeating: 0, count: n) }
      _ = try read(into: &piece, atFrameStart: false)
      body += piece
    }
    guard let kind = MessageKind(rawValue: body[0]) else { throw ParallelError.malformedFrame("unknown message kind \(body[0])") }
    return (kind, FrameReader(Array(body[1...])))
  }

  /// Fills `buffer`; false on EOF before the first byte of a frame, an error on EOF inside one.
  private func read(into buffer: inout [UInt8], atFrameStart: Bool) throws -> Bool {
    let total = buffer.count
    return try buffer.withUnsafeMutableBytes { raw in
      var got = 0
      while got < total {
        let n = Glibc.read(fd, raw.baseAddress! + got, total - got)
        if n < 0 {
          if errno == EINTR { continue }
          if errno == ECONNRESET { throw Closed() }
          throw ParallelError.posix("read", "reading a frame")
        }
        if n == 0 {
          if got == 0 && atFrameStart { return false }
          throw Closed()
        }
        got += n
      }
      return true
    }
  }
}
