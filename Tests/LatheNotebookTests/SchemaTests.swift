// SchemaTests: SHA-256 vectors, the SQLite wrapper, and the schema a new notebook gets.
import CSQLite
import Foundation
import LatheLang
import Testing
@testable import LatheNotebook

@Suite struct SHA256Tests {
  @Test(arguments: [
    ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
  ])
  func knownVectors(message: String, digest: String) {
    #expect(SHA256.hex(Array(message.utf8)) == digest)
  }

  @Test func millionAs() {
    #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
      == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  @Test func incrementalMatchesOneShot() {
    var generator = SplitMix64(seed: 1)
    let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &generator) }
    for cut in [0, 1, 55, 56, 63, 64, 65, 127, 500, 999, 1000] {
      var hasher = SHA256()
      hasher.update(Array(bytes[0..<cut]))
      hasher.update(Array(bytes[cut...]))
      #expect(SHA256.hexString(hasher.finalize()) == SHA256.hex(bytes), "split at \(cut)")
    }
  }
}

@Suite struct DatabaseTests {
  @Test func valuesRoundTrip() throws {
    let db = try Database(path: ":memory:")
    try db.execute("CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n ANY) STRICT")
    try db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)",
                   [.integer(-7), .real(2.5), .text("héllo\0x"), .blob([]), .null])
    let row = try #require(try db.query("SELECT i, r, s, b, n FROM t").first)
    #expect(row == [.integer(-7), .real(2.5), .text("héllo\0x"), .blob([]), .null])
  }

  @Test func errorsCarryTheSQL() throws {
    let db = try Database(path: ":memory:")
    do {
      try db.execute("SELECT * FROM missing_table")
      Issue.record("expected an error")
    } catch let error as NotebookError {
      #expect(error.description.contains("no such table: missing_table"))
      #expect(error.description.contains("SELECT * FROM missing_table"))
    }
    #expect(throws: NotebookError.self) { try db.execute("SELECT ?", [.integer(1), .integer(2)]) }
  }

  @Test func transactionRollsBackOnError() throws {
    let db = try Database(path: ":memory:")
    try db.execute("CREATE TABLE t(x INTEGER) STRICT")
    struct Stop: Error {}
    #expect(throws: Stop.self) {
      try db.transaction {
        try db.execute("INSERT INTO t VALUES (1)")
        throw Stop()
      }
    }
    #expect(try db.scalar("SELECT count(*) FROM t") == .integer(0))
    #expect(db.isAutocommit)
  }
}

@Suite struct SchemaTests {
  @Test func newNotebookHasTheSchema() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let notebook = try Notebook.open(path: path)
    defer { notebook.close() }
    let db = notebook.db
    #expect(try db.pragma("application_id") == .integer(0x4C41_5448))
    #expect(try db.pragma("user_version") == .integer(Int64(Schema.latestVersion)))
    #expect(try db.pragma("page_size") == .integer(8192))
    #expect(try db.pragma("journal_mode") == .text("wal"))
    #expect(try db.pragma("foreign_keys") == .integer(1))
    #expect(try db.pragma("synchronous") == .integer(2))
    #expect(try db.pragma("integrity_check") == .text("ok"))
    let tables = try db.query("""
      SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%'
      """)
    let names = Set(tables.compactMap { $0[0].string })
    #expect(names == ["meta", "blob", "blob_chunk", "environment", "cell", "session", "run", "output", "metric",
                      "param", "input", "artifact", "cache"])
    for table in tables { #expect(table[1] == .integer(1), "\(table[0]) is not STRICT") }
    #expect(try notebook.meta("format") == "lathe-notebook")
    #expect(try notebook.check() == [])
    // The header written to the main file identifies it (what file(1) reads).
    notebook.close()
    let header = try Fixtures.bytes(of: path)
    #expect(Array(header[68..<72]) == Array("LATH".utf8))
  }

  @Test func constraintsAreEnforced() throws {
    let notebook = try Notebook.open(path: ":memory:")
    let db = notebook.db
    // A run must belong to a session (foreign keys are on).
    #expect(throws: NotebookError.self) {
      try db.execute("INSERT INTO run(session_id, seq, source, source_hash, status, started_at) VALUES (99, 1, '', ?, 'ok', 0)",
                     [.text(String(repeating: "0", count: 64))])
    }
    // STRICT rejects a text in an integer column.
    #expect(throws: NotebookError.self) {
      try db.execute("INSERT INTO blob(hash, size, codec, content) VALUES (?, 'big', 'raw', x'00')",
                     [.text(String(repeating: "0", count: 64))])
    }
    #expect(throws: NotebookError.self) {
      try notebook.saveArtifact(run: nil, name: "a", kind: "tensor", bytes: [1], dtype: nil, shape: nil, meta: "{not json")
    }
    #expect(throws: NotebookError.self) {
      try notebook.saveArtifact(run: nil, name: "a", kind: "movie", bytes: [1], dtype: nil, shape: nil, meta: nil)
    }
  }

  @Test func environmentIsDeduplicated() throws {
    let notebook = try Notebook.open(path: ":memory:")
    let first = try notebook.recordEnvironment(Fixtures.environment)
    let again = try notebook.recordEnvironment(Fixtures.environment)
    var other = Fixtures.environment
    other.blasThreads = 2
    let second = try notebook.recordEnvironment(other)
    #expect(first == again)
    #expect(first != second)
    let stored = try #require(try notebook.environment(id: first))
    #expect(stored.sqliteVersion == Database.libraryVersion)
    #expect(stored.cpuModel == "test cpu" && stored.memoryBytes == 8 << 30 && stored.extra == #"{"note":"fixture"}"#)
  }

  @Test func reopeningKeepsTheVersionAndData() throws {
    let path = try Fixtures.temporaryNotebookPath()
    try Fixtures.populate(try Notebook.open(path: path))
    let notebook = try Notebook.open(path: path)
    #expect(notebook.formatVersion == Schema.latestVersion)
    #expect(try notebook.sessions().count == 1)
    #expect(notebook.recoveredSessions.isEmpty)
  }

  @Test func newerVersionIsReadOnly() throws {
    let path = try Fixtures.temporaryNotebookPath()
    try Fixtures.populate(try Notebook.open(path: path))
    let raw = try Database(path: path, flags: SQLITE_OPEN_READWRITE)
    try raw.execute("PRAGMA user_version = 99")
    raw.close()
    let before = try Fixtures.sha256(of: path)
    do {
      _ = try Notebook.open(path: path)
      Issue.record("a newer notebook opened for writing")
    } catch let error as NotebookError {
      guard case .newerVersion(_, 99, Schema.latestVersion) = error else { throw error }
      #expect(error.description.contains("read-only"))
    }
    #expect(try Fixtures.sha256(of: path) == before)
    let reader = try Notebook.open(path: path, readOnly: true)
    #expect(reader.formatVersion == 99)
    #expect(try reader.sessions().count == 1)
  }
}
