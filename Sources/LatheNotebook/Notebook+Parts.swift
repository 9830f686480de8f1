// Notebook+Parts: large blobs stored as content-defined parts, each a blob under its own SHA-256, so two values
// that share most of their bytes (a model, and a variant of it with one layer compressed) share their storage.
import Foundation

/// Cuts bytes into parts where the content says so (a gear rolling hash, as in FastCDC), so an edit, or bytes
/// inserted or removed, changes only the parts around it: the cuts after it fall where they fell before.
///
///     let ends = ContentParts.boundaries(raw)    // ends of the parts; the last is raw.count
enum ContentParts {
  /// No cut before this many bytes of a part, and always one at `maximum`.
  static let minimum = 32 * 1024
  static let maximum = 512 * 1024
  /// A cut where the top 17 bits of the hash are zero: one position in 2^17, so parts average about
  /// minimum + 128 KiB. The top bits depend on the last 64 bytes (each byte's word is shifted out after 64).
  /// (Measured on SmolLM2: five variants with one layer compressed differently add 14 MB beside the 98 MB base,
  /// of which 10 MB are the new layers themselves; parts twice this size added 17.5 MB.)
  static let mask: UInt64 = ~0 << 47

  /// One random word per byte value. Fixed forever: other cuts would not find the parts stored by earlier builds
  /// (the content would still be right, only stored twice).
  static let gear: [UInt64] = {
    var state: UInt64 = 0x4C41_5448_5041_5254      // "LATHPART"
    return (0..<256).map { _ in
      state &+= 0x9E37_79B9_7F4A_7C15                // SplitMix64
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
  }()

  /// The end offset of each part, in order; empty for empty input.
  static func boundaries(_ bytes: UnsafeRawBufferPointer) -> [Int] {
    var ends: [Int] = []
    let count = bytes.count
    var start = 0
    gear.withUnsafeBufferPointer { table in
      while start < count {
        let limit = min(start + maximum, count)
        var position = min(start + minimum, limit)
        var hash: UInt64 = 0
        // The hash starts fresh 64 bytes before the first allowed cut (its top bits only see 64 bytes anyway).
        for index in max(start, position - 64)..<position { hash = (hash << 1) &+ table[Int(bytes[index])] }
        while position < limit {
          hash = (hash << 1) &+ table[Int(bytes[position])]
          position += 1
          if hash & mask == 0 { break }
        }
        ends.append(position)
        start = position
      }
    }
    return ends
  }
}

/// The content of a `parts` blob: the hash and size of each part, in order.
///
///     lathe-parts 1
///     <sha256 of part 0> <size>
///     ...
struct PartsManifest: Equatable {
  static let header = "lathe-parts 1"
  var parts: [(hash: String, size: Int)]

  static func == (a: PartsManifest, b: PartsManifest) -> Bool {
    a.parts.map(\.hash) == b.parts.map(\.hash) && a.parts.map(\.size) == b.parts.map(\.size)
  }

  var bytes: [UInt8] {
    Array(([PartsManifest.header] + parts.map { "\($0.hash) \($0.size)" }).joined(separator: "\n").utf8) + [10]
  }

  /// Reads a manifest, checking every line; `hash` names the blob in errors.
  init(bytes: [UInt8], hash: String) throws {
    func bad(_ reason: String) -> NotebookError { .badBlob(hash: hash, reason: "parts list \(reason)") }
    let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.first == Substring(PartsManifest.header), lines.last == "" else { throw bad("has no 'lathe-parts 1' header") }
    parts = []
    for (number, line) in lines.dropFirst().dropLast().enumerated() {
      let fields = line.split(separator: " ")
      guard fields.count == 2, fields[0].utf8.count == 64,
            fields[0].utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }),
            let size = Int(fields[1]), size >= 0 else {
        throw bad("line \(number + 2) is not '<sha256> <size>'")
      }
      parts.append((String(fields[0]), size))
    }
  }

  init(parts: [(hash: String, size: Int)]) { self.parts = parts }
}

extension Notebook {
  /// Writes the parts of `bytes` (those not stored yet) as raw blobs, each batch of up to 64 MiB in its own
  /// transaction, and returns the manifest that the `parts` blob row holds. A part is a whole blob, so a run killed
  /// half-way leaves only complete, unreferenced blobs.
  func stageParts(_ bytes: [UInt8]) throws -> [UInt8] {
    try bytes.withUnsafeBytes { raw in
      let ends = ContentParts.boundaries(raw)
      var parts: [(hash: String, size: Int)] = []
      let insert = try db.prepare("INSERT OR IGNORE INTO blob(hash, size, codec, content) VALUES (?, ?, 'raw', ?)")
      var start = 0, batch: [(Int, Int, String)] = [], batchBytes = 0
      func flush() throws {
        try db.transaction {
          for (from, to, hash) in batch {
            try insert.bind([.text(hash), .integer(Int64(to - from)), .null])
            try insert.bindBlob(3, UnsafeRawBufferPointer(rebasing: raw[from..<to]))
            while try insert.step() {}
          }
        }
        batch.removeAll()
        batchBytes = 0
      }
      for end in ends {
        let piece = UnsafeRawBufferPointer(rebasing: raw[start..<end])
        var hasher = SHA256()
        hasher.update(piece)
        let hash = SHA256.hexString(hasher.finalize())
        parts.append((hash, end - start))
        batch.append((start, end, hash))
        batchBytes += end - start
        if batchBytes >= Notebook.chunksPerTransaction * Notebook.chunkSize { try flush() }
        start = end
      }
      if !batch.isEmpty { try flush() }
      return PartsManifest(parts: parts).bytes
    }
  }

  /// The parts of a `parts` blob, in order: each read as a raw blob and checked against its own hash and size
  /// before `body` sees it (the caller checks the whole). Parts are never themselves `parts` blobs, so a damaged
  /// list cannot make the read loop.
  func readParts(manifest: [UInt8], hash: String, size: Int64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    let list = try PartsManifest(bytes: manifest, hash: hash)
    guard Int64(list.parts.reduce(0) { $0 + $1.size }) == size else {
      throw NotebookError.badBlob(hash: hash, reason: "its parts add up to \(list.parts.reduce(0) { $0 + $1.size }) bytes, its row says \(size)")
    }
    let read = try db.prepare("SELECT codec, content FROM blob WHERE hash = ?")
    for (index, part) in list.parts.enumerated() {
      try read.bind([.text(part.hash)])
      guard try read.step() else {
        throw NotebookError.badBlob(hash: hash, reason: "part \(index) (\(part.hash)) is missing")
      }
      guard read.column(0).string == "raw" else {
        throw NotebookError.badBlob(hash: hash, reason: "part \(index) (\(part.hash)) is stored as \(read.column(0)), not raw")
      }
      try read.withBlob(1) { piece in
        var hasher = SHA256()
        hasher.update(piece)
        guard piece.count == part.size, SHA256.hexString(hasher.finalize()) == part.hash else {
          throw NotebookError.badBlob(hash: hash, reason: "part \(index) (\(part.hash)) does not match its hash or size (the file is damaged)")
        }
        try body(piece)
      }
    }
  }
}
