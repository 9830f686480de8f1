// Notebook+Blobs: content-addressed blobs (inline, or in content-defined parts; chunked in older files), artifacts
// that name them, and the `check` report.
import Foundation

/// A blob whose parts (if any) are written and whose `blob` row is still to be inserted, by the same transaction
/// as the first row that references it: a half-written blob is never visible.
struct StagedBlob {
  var hash: String
  var size: Int
  /// `raw` (content is the bytes) or `parts` (content is the parts list).
  var codec: String
  var content: [UInt8]
}

extension Notebook {
  /// Blobs larger than this are stored as `parts`: content-defined pieces of 32 to 512 KiB, each a raw blob
  /// under its own hash, shared by every blob that contains it. (Files of schema version 1 hold `chunked` blobs:
  /// 1 MiB `blob_chunk` rows; they are still read.)
  public static let chunkThreshold = 16 * 1024 * 1024
  /// Size of one `blob_chunk` row of a `chunked` blob.
  public static let chunkSize = 1024 * 1024
  /// Bytes per write transaction, in chunks: bounds the -wal file and the size of one transaction (64 MiB).
  static let chunksPerTransaction = 64

  /// The artifact kinds the schema allows.
  public static let artifactKinds: Set<String> = ["tensor", "model", "image", "table", "curve", "report", "file"]

  /// Hashes `bytes` and, when large, writes its parts (each batch its own transaction).
  func stageBlob(_ bytes: [UInt8]) throws -> StagedBlob {
    let hash = SHA256.hex(bytes)
    guard bytes.count > Notebook.chunkThreshold else { return StagedBlob(hash: hash, size: bytes.count, codec: "raw", content: bytes) }
    if let codec = try db.scalar("SELECT codec FROM blob WHERE hash = ?", [.text(hash)])?.string {
      return StagedBlob(hash: hash, size: bytes.count, codec: codec, content: [])
    }
    return StagedBlob(hash: hash, size: bytes.count, codec: "parts", content: try stageParts(bytes))
  }

  /// `INSERT OR IGNORE`s the blob row of a staged blob; call inside the transaction that references it.
  func insertBlobRow(_ blob: StagedBlob) throws {
    try db.execute("INSERT OR IGNORE INTO blob(hash, size, codec, content) VALUES (?, ?, ?, ?)",
                   [.text(blob.hash), .integer(Int64(blob.size)), .text(blob.codec),
                    ["chunked", "external"].contains(blob.codec) ? .null : .blob(blob.content)])
  }

  /// Stores `bytes` once under its SHA-256 and returns the hash. Blobs over 16 MiB are stored as parts.
  @discardableResult
  public func putBlob(_ bytes: [UInt8]) throws -> String {
    try requireWritable("store a blob")
    let staged = try stageBlob(bytes)
    try db.transaction { try insertBlobRow(staged) }
    return staged.hash
  }

  /// The content of blob `hash`, verified against the hash.
  public func getBlob(_ hash: String) throws -> [UInt8] {
    var bytes: [UInt8] = []
    if let size = try db.scalar("SELECT size FROM blob WHERE hash = ?", [.text(hash)])?.int64 {
      bytes.reserveCapacity(Int(max(0, min(size, 1 << 30))))
    }
    try readBlob(hash) { bytes.append(contentsOf: $0) }
    return bytes
  }

  /// Streams blob `hash` to `body` piece by piece, holding one piece at a time: a raw blob whole (at most 16 MiB),
  /// an old chunked blob chunk by chunk, a parts blob part by part, each part checked against its own hash and size
  /// before it is handed on. The total size and the whole hash are checked at the end: a damaged blob throws
  /// `NotebookError.badBlob` (after `body` saw the pieces before the damage).
  public func readBlob(_ hash: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    guard let row = try db.query("SELECT size, codec FROM blob WHERE hash = ?", [.text(hash)]).first else {
      throw NotebookError.badBlob(hash: hash, reason: "not in notebook \(path)")
    }
    let size = row[0].int64 ?? -1
    var hasher = SHA256()
    var total: Int64 = 0
    func take(_ piece: UnsafeRawBufferPointer) throws {
      hasher.update(piece)
      total += Int64(piece.count)
      try body(piece)
    }
    switch row[1].string {
    case "raw":
      let content = try db.prepare("SELECT content FROM blob WHERE hash = ?")
      try content.bind([.text(hash)])
      if try content.step() { try content.withBlob(0) { try take($0) } }
    case "chunked":
      let chunks = try db.prepare("SELECT idx, content FROM blob_chunk WHERE hash = ? ORDER BY idx")
      try chunks.bind([.text(hash)])
      var expected: Int64 = 0
      while try chunks.step() {
        guard chunks.column(0).int64 == expected else {
          throw NotebookError.badBlob(hash: hash, reason: "chunk \(expected) is missing")
        }
        try chunks.withBlob(1) { try take($0) }
        expected += 1
      }
    case "parts":
      let manifest = try db.scalar("SELECT content FROM blob WHERE hash = ?", [.text(hash)])?.bytes ?? []
      try readParts(manifest: manifest, hash: hash, size: size) { try take($0) }
    default:
      throw NotebookError.badBlob(hash: hash, reason: "codec \(row[1]) is not supported by this build")
    }
    guard total == size else {
      throw NotebookError.badBlob(hash: hash, reason: "has \(total) bytes, its row says \(size)")
    }
    guard SHA256.hexString(hasher.finalize()) == hash else {
      throw NotebookError.badBlob(hash: hash, reason: "content does not match its hash (the file is damaged)")
    }
  }

  /// Stores `bytes` as a blob and records artifact `name` of `kind` (tensor, model, image, table, curve, report,
  /// file) in one transaction; `shape` is stored as a JSON array, `meta` must be JSON. Returns the artifact id.
  @discardableResult
  public func saveArtifact(run: Int64?, name: String, kind: String, bytes: [UInt8], dtype: String?, shape: [Int]?,
                           meta: String?) throws -> Int64 {
    try requireWritable("save an artifact")
    guard Notebook.artifactKinds.contains(kind) else {
      throw NotebookError.invalidArgument("artifact kind '\(kind)' is not one of \(Notebook.artifactKinds.sorted())")
    }
    guard !name.isEmpty else { throw NotebookError.invalidArgument("an artifact needs a name") }
    try requireJSON(meta, field: "meta of artifact \(name)")
    let staged = try stageBlob(bytes)
    let shapeJSON = shape.map { "[" + $0.map(String.init).joined(separator: ",") + "]" }
    return try db.transaction {
      try insertBlobRow(staged)
      try db.execute("""
        INSERT INTO artifact(run_id, name, kind, blob_hash, dtype, shape, meta, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        """, [SQLValue(run), .text(name), .text(kind), .text(staged.hash), SQLValue(dtype), SQLValue(shapeJSON),
              SQLValue(meta), .integer(unixMilliseconds())])
      return db.lastInsertRowID
    }
  }

  /// The newest artifact called `name` (by artifact_id), or nil.
  public func loadArtifact(name: String) throws -> (bytes: [UInt8], kind: String, meta: String?)? {
    let sql = "SELECT kind, blob_hash, meta FROM artifact WHERE name = ? ORDER BY artifact_id DESC LIMIT 1"
    guard let row = try db.query(sql, [.text(name)]).first else { return nil }
    let bytes = try getBlob(try requireString(row[1], column: "artifact.blob_hash"))
    return (bytes, try requireString(row[0], column: "artifact.kind"), row[2].string)
  }

  /// Distinct artifact names, sorted.
  public func artifactNames() throws -> [String] {
    try db.query("SELECT DISTINCT name FROM artifact ORDER BY name").compactMap { $0.first?.string }
  }

  /// Every artifact row with its blob's size, oldest first (optionally only those of `run`).
  public func artifacts(run: Int64? = nil) throws -> [ArtifactRecord] {
    let filter = run == nil ? "" : "WHERE a.run_id = ?"
    let sql = """
      SELECT a.artifact_id, a.run_id, a.name, a.kind, a.blob_hash, coalesce(b.size, -1), a.dtype, a.shape, a.meta,
        a.created_at FROM artifact a LEFT JOIN blob b ON b.hash = a.blob_hash \(filter) ORDER BY a.artifact_id
      """
    return try db.query(sql, run.map { [.integer($0)] } ?? []).map { row in
      ArtifactRecord(id: try requireInt64(row[0], column: "artifact.artifact_id"), runID: row[1].int64,
                     name: try requireString(row[2], column: "artifact.name"),
                     kind: try requireString(row[3], column: "artifact.kind"),
                     blobHash: try requireString(row[4], column: "artifact.blob_hash"), size: row[5].int64 ?? -1,
                     dtype: row[6].string, shape: row[7].string, meta: row[8].string, createdAt: row[9].int64 ?? 0)
    }
  }

  /// Problems found in the file: `integrity_check` messages, foreign-key violations, blobs whose content does not
  /// hash to their key, and sources that do not match their `source_hash`. Empty means healthy.
  public func check() throws -> [String] {
    try syncPendingOutputs()
    var problems: [String] = []
    func section(_ name: String, _ body: () throws -> Void) {
      do { try body() } catch { problems.append("\(name) failed: \(error)") }
    }
    section("integrity_check") {
      let rows = try db.query("PRAGMA integrity_check(100)").compactMap { $0.first?.string }
      if rows != ["ok"] { problems += rows.map { "integrity: \($0)" } }
    }
    section("foreign_key_check") {
      for row in try db.query("PRAGMA foreign_key_check") where row.count >= 3 {
        problems.append("foreign key: \(row[0]) row \(row[1]) refers to a missing \(row[2]) row")
      }
    }
    section("blob check") {
      for row in try db.query("SELECT hash FROM blob ORDER BY hash") {
        guard let hash = row.first?.string else { continue }
        do { try readBlob(hash) { _ in } } catch { problems.append("\(error)") }     // streamed: one piece at a time
      }
    }
    section("source check") {
      for (table, key) in [("cell", "cell_id"), ("run", "run_id")] {
        for row in try db.query("SELECT \(key), source, source_hash FROM \(table) ORDER BY \(key)") {
          if SHA256.hex(row[1].string ?? "") != row[2].string {
            problems.append("\(table) \(row[0]): source does not match its source_hash")
          }
        }
      }
    }
    return problems
  }

  /// Writers flush their buffer before reading, so readers see every output appended so far.
  func syncPendingOutputs() throws {
    if !isReadOnly, !pendingOutputs.isEmpty { try flushOutputs() }
  }
}
