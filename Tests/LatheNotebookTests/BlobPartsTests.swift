// BlobPartsTests: content-defined parts (where the cuts fall, what variants of a large value cost), the parts list,
// and a schema version 1 file with chunked blobs migrating to version 2.
import Foundation
import LatheLang
import Testing
@testable import LatheNotebook

@Suite struct BlobPartsTests {
  static func ends(_ bytes: [UInt8]) -> [Int] { bytes.withUnsafeBytes { ContentParts.boundaries($0) } }

  /// Parts as byte arrays, for comparing two cuttings.
  static func parts(_ bytes: [UInt8]) -> [[UInt8]] {
    var start = 0
    return ends(bytes).map { end in defer { start = end }; return Array(bytes[start..<end]) }
  }

  @Test func cutsFallWithinTheLimitsAndResynchroniseAfterAnEdit() {
    let bytes = Fixtures.randomBytes(6 * 1024 * 1024 + 7, seed: 5)
    let ends = Self.ends(bytes)
    #expect(ends.last == bytes.count)
    var start = 0
    for (index, end) in ends.enumerated() {
      #expect(end - start <= ContentParts.maximum)
      if index < ends.count - 1 { #expect(end - start >= ContentParts.minimum) }
      start = end
    }
    #expect(ends.count >= bytes.count / ContentParts.maximum && ends.count <= bytes.count / ContentParts.minimum + 1)
    #expect(Self.ends([]) == [])
    #expect(Self.ends([1, 2, 3]) == [3])
    // Constant bytes (padding) cut at the minimum or the maximum, never in between.
    #expect(Set(Self.parts([UInt8](repeating: 0, count: 3 * 1024 * 1024)).dropLast().map(\.count)).count == 1)

    // 1000 bytes inserted near the middle: every part far enough from the edit is one of the original parts.
    var edited = bytes
    edited.insert(contentsOf: [UInt8](repeating: 9, count: 1000), at: 3 * 1024 * 1024)
    let before = Set(Self.parts(bytes)), after = Self.parts(edited)
    let fresh = after.filter { !before.contains($0) }
    #expect(fresh.count <= 3, "\(fresh.count) of \(after.count) parts changed")
    #expect(fresh.reduce(0) { $0 + $1.count } <= 3 * ContentParts.maximum)
  }

  @Test func manifestRoundTripsAndRejectsDamage() throws {
    let list = PartsManifest(parts: [(String(repeating: "a", count: 64), 10), (String(repeating: "0", count: 64), 0)])
    #expect(try PartsManifest(bytes: list.bytes, hash: "h") == list)
    for damaged in ["", "lathe-parts 1", "lathe-parts 2\n", "lathe-parts 1\nabc 3\n",
                    "lathe-parts 1\n\(String(repeating: "A", count: 64)) 3\n", "lathe-parts 1\n\(String(repeating: "a", count: 64)) -3\n",
                    "lathe-parts 1\n\(String(repeating: "a", count: 64)) 3 4\n"] {
      #expect(throws: NotebookError.self, "\(damaged.debugDescription)") { try PartsManifest(bytes: Array(damaged.utf8), hash: "h") }
    }
  }

  /// A value laid out as a model file is: a header, then tensors one after another.
  static func image(header: [UInt8], tensors: [[UInt8]]) -> [UInt8] { tensors.reduce(header, +) }

  @Test func variantsOfALargeValueStoreOnlyWhatChanged() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let notebook = try Notebook.open(path: path)
    let tensors = (0..<24).map { Fixtures.randomBytes(1024 * 1024, seed: UInt64(100 + $0)) }
    let header = Fixtures.randomBytes(300_000, seed: 1)
    try notebook.saveArtifact(run: nil, name: "base", kind: "model", bytes: Self.image(header: header, tensors: tensors),
                              dtype: nil, shape: nil, meta: nil)
    try notebook.checkpoint()
    let baseSize = try Self.fileBytes(notebook)
    // Five variants, each with one tensor replaced by a smaller one (its later neighbours move) and a few header
    // bytes changed (a compression report in the metadata).
    var variants: [[UInt8]] = []
    for v in 0..<5 {
      var t = tensors, h = header
      t[3 + 4 * v] = Fixtures.randomBytes(512 * 1024, seed: UInt64(200 + v))
      h.replaceSubrange(1000..<1010, with: Array("variant \(v) ".utf8.prefix(10)))
      variants.append(Self.image(header: h, tensors: t))
      try notebook.saveArtifact(run: nil, name: "v\(v)", kind: "model", bytes: variants[v], dtype: nil, shape: nil, meta: nil)
    }
    try notebook.checkpoint()
    let growth = try Self.fileBytes(notebook) - baseSize
    // Without parts each variant would add 24.3 MB; with them, the new tensor (0.5 MiB) and the parts at the edges.
    #expect(growth < 5 * 4 * 1024 * 1024, "5 variants grew the file by \(growth) bytes")
    #expect(baseSize > 24 * 1024 * 1024)
    notebook.close()

    let reader = try Notebook.open(path: path, readOnly: true)
    for v in 0..<5 { #expect(try reader.loadArtifact(name: "v\(v)")?.bytes == variants[v]) }
    #expect(try reader.loadArtifact(name: "base")?.bytes == Self.image(header: header, tensors: tensors))
    #expect(try reader.check() == [])
  }

  static func fileBytes(_ notebook: Notebook) throws -> Int {
    let pages = try notebook.db.pragma("page_count")?.int ?? 0, free = try notebook.db.pragma("freelist_count")?.int ?? 0
    return (pages - free) * (try notebook.db.pragma("page_size")?.int ?? 0)
  }

  /// A file as schema version 1 wrote it: a chunked blob behind an artifact, a raw one behind an output.
  static func versionOneFile(_ path: String, big: [UInt8]) throws {
    let db = try Database(path: path)
    try db.execute("PRAGMA page_size = 8192")
    try db.executeScript(Schema.version1)
    try db.executeScript("PRAGMA application_id = \(Schema.applicationID); PRAGMA user_version = 1;")
    let hash = SHA256.hex(big)
    for index in 0..<(big.count + Notebook.chunkSize - 1) / Notebook.chunkSize {
      let piece = Array(big[(index * Notebook.chunkSize)..<min(big.count, (index + 1) * Notebook.chunkSize)])
      try db.execute("INSERT INTO blob_chunk(hash, idx, content) VALUES (?, ?, ?)", [.text(hash), .integer(Int64(index)), .blob(piece)])
    }
    try db.execute("INSERT INTO blob(hash, size, codec, content) VALUES (?, ?, 'chunked', NULL)", [.text(hash), .integer(Int64(big.count))])
    try db.execute("INSERT INTO artifact(name, kind, blob_hash, created_at) VALUES ('old', 'model', ?, 0)", [.text(hash)])
    let text = Array(String(repeating: "y", count: 70_000).utf8)
    try db.execute("INSERT INTO blob(hash, size, codec, content) VALUES (?, ?, 'raw', ?)",
                   [.text(SHA256.hex(text)), .integer(Int64(text.count)), .blob(text)])
    try db.execute("""
      INSERT INTO environment(env_id, env_hash, lathe_version) VALUES (1, ?, '0.1');
      """, [.text(String(repeating: "e", count: 64))])
    try db.execute("INSERT INTO session(session_id, mode, status, started_at, env_id) VALUES (1, 'repl', 'closed', 0, 1)")
    try db.execute("INSERT INTO run(run_id, session_id, seq, source, source_hash, status, started_at) VALUES (1, 1, 1, 'x', ?, 'ok', 0)",
                   [.text(SHA256.hex("x"))])
    try db.execute("INSERT INTO output(run_id, idx, kind, blob_hash, created_at) VALUES (1, 0, 'stdout', ?, 0)",
                   [.text(SHA256.hex(text))])
    db.close()
  }

  @Test func versionOneNotebookMigratesAndStillLoads() throws {
    let path = try Fixtures.temporaryNotebookPath("v1.lnb")
    let big = Fixtures.randomBytes(Notebook.chunkThreshold + 5000, seed: 9)
    try Self.versionOneFile(path, big: big)
    // Read-only, the old file is read as it is.
    let reader = try Notebook.open(path: path, readOnly: true)
    #expect(reader.formatVersion == 1)
    #expect(try reader.loadArtifact(name: "old")?.bytes == big)
    reader.close()

    let notebook = try Notebook.open(path: path)
    #expect(try notebook.db.pragma("user_version") == .integer(Int64(Schema.latestVersion)))
    #expect(try notebook.db.pragma("foreign_keys") == .integer(1))
    #expect(try notebook.loadArtifact(name: "old")?.bytes == big)
    #expect(try notebook.run(id: 1)?.outputs.first?.text == String(repeating: "y", count: 70_000))
    #expect(try notebook.check() == [])
    // The new codec is accepted, and foreign keys still hold.
    var changed = big
    changed[100] ^= 1
    try notebook.saveArtifact(run: 1, name: "new", kind: "model", bytes: changed, dtype: nil, shape: nil, meta: nil)
    #expect(try notebook.db.scalar("SELECT codec FROM blob WHERE hash = ?", [.text(SHA256.hex(changed))]) == .text("parts"))
    #expect(throws: NotebookError.self) {
      try notebook.db.execute("INSERT INTO artifact(name, kind, blob_hash, created_at) VALUES ('x', 'model', ?, 0)",
                              [.text(String(repeating: "d", count: 64))])
    }
    #expect(try notebook.check() == [])
    notebook.close()
    let again = try Notebook.open(path: path, readOnly: true)
    #expect(try again.loadArtifact(name: "new")?.bytes == changed)
    #expect(try again.loadArtifact(name: "old")?.bytes == big)
  }
}
