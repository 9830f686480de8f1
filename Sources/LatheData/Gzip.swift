// Gzip: whole-buffer inflate through zlib, with a size cap, for the .gz files datasets ship in.

import CZlib

/// Decompresses gzip (and zlib) data.
///
///     let bytes = try Gzip.read(path: "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
public enum Gzip {
  /// The most bytes one file may inflate to unless the caller says otherwise (Fashion-MNIST train is 47 MB).
  public static let defaultLimit = 1 << 30

  /// The decompressed bytes of a gzip file. Throws `DataError` for a missing, truncated or corrupt file.
  public static func read(path: String, limit: Int = defaultLimit) throws -> [UInt8] {
    try decompress(try readFile(path), limit: limit, path: path)
  }

  /// Inflates every member of a gzip stream (members may be concatenated, as `cat a.gz b.gz` makes; trailing zero
  /// padding is ignored). `path` only names the input in errors.
  public static func decompress(_ bytes: [UInt8], limit: Int = defaultLimit, path: String = "<gzip data>") throws -> [UInt8] {
    guard !bytes.isEmpty else { throw DataError.malformed(path: path, field: "gzip header", reason: "the data is empty") }
    let inflater = try Inflater(path: path)
    var out: [UInt8] = []
    // ISIZE, the last 4 bytes, is the size modulo 2^32 of the last member: a good first guess for one member.
    if bytes.count >= 18 {
      let n = bytes.count
      let isize = Int(bytes[n - 4]) | Int(bytes[n - 3]) << 8 | Int(bytes[n - 2]) << 16 | Int(bytes[n - 1]) << 24
      out.reserveCapacity(max(0, min(isize, limit, bytes.count * 1032)))     // deflate expands at most ~1032:1
    }
    let chunk = 1 << 18
    let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: chunk)
    defer { buffer.deallocate() }

    try bytes.withUnsafeBufferPointer { input in
      guard let base = input.baseAddress else { return }
      let s = inflater.stream
      s.pointee.next_in = UnsafeMutablePointer(mutating: base)
      s.pointee.avail_in = 0
      var consumed = 0                              // bytes of `input` handed to zlib so far
      var member = 1
      while true {
        if s.pointee.avail_in == 0 && consumed < input.count {
          let n = min(input.count - consumed, Int(UInt32.max))
          s.pointee.next_in = UnsafeMutablePointer(mutating: base + consumed)
          s.pointee.avail_in = UInt32(n)
          consumed += n
        }
        s.pointee.next_out = buffer
        s.pointee.avail_out = UInt32(chunk)
        let code = inflate(s, Z_NO_FLUSH)
        let produced = chunk - Int(s.pointee.avail_out)
        if produced > 0 {
          guard out.count + produced <= limit else {
            throw DataError.malformed(path: path, field: "gzip data", reason: "inflates to more than \(limit) bytes")
          }
          out.append(contentsOf: UnsafeBufferPointer(start: buffer, count: produced))
        }
        switch code {
        case Z_OK:
          continue
        case Z_STREAM_END:
          let left = Int(s.pointee.avail_in) + (input.count - consumed)
          if left == 0 { return }
          let rest = input.count - left
          if input[rest...].allSatisfy({ $0 == 0 }) { return }
          member += 1
          guard inflateReset(s) == Z_OK else {
            throw DataError.malformed(path: path, field: "gzip member \(member)", reason: "zlib could not reset the stream")
          }
        case Z_BUF_ERROR where s.pointee.avail_in == 0 && consumed == input.count:
          throw DataError.malformed(path: path, field: "gzip member \(member)",
                                    reason: "the data is truncated (ends after \(out.count) inflated bytes)")
        default:
          let message = s.pointee.msg.map { String(cString: $0) } ?? "zlib error \(code)"
          throw DataError.malformed(path: path, field: "gzip member \(member)", reason: "corrupt data: \(message)")
        }
      }
    }
    return out
  }
}

/// Owns one zlib inflate stream: zlib keeps a pointer back to the `z_stream`, so it lives at a fixed address.
private final class Inflater {
  let stream: UnsafeMutablePointer<z_stream>

  init(path: String) throws {
    let s = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
    s.initialize(to: z_stream())
    // windowBits 15 + 32: a 32 KiB window, and detect a gzip or zlib header automatically.
    let code = inflateInit2_(s, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    guard code == Z_OK else {
      s.deinitialize(count: 1)
      s.deallocate()
      throw DataError.cannotRead(path: path, reason: "zlib inflateInit2 failed with code \(code)")
    }
    stream = s
  }

  deinit {
    inflateEnd(stream)
    stream.deinitialize(count: 1)
    stream.deallocate()
  }
}
