// Schema: the notebook's append-only list of SQL migrations, numbered by PRAGMA user_version.
import Foundation

/// Migrations, in order: `migrations[0]` takes a file from version 0 (empty) to 1, and so on.
/// Never edit a released entry; append a new one, and a golden file of the old version to the tests.
public enum Schema {
  /// `PRAGMA application_id`: "LATH" in ASCII, so `file(1)` can tell a notebook from other SQLite files.
  public static let applicationID: Int32 = 0x4C41_5448
  /// The `meta.format` value of every notebook.
  public static let format = "lathe-notebook"

  public static let migrations: [String] = [version1, version2]

  /// The schema version this build writes.
  public static var latestVersion: Int { migrations.count }

  /// Brings `db` from `version` to `latestVersion` in one `BEGIN IMMEDIATE` transaction that ends with
  /// `PRAGMA user_version=N`, so a migration killed half-way leaves the old version intact. Foreign keys are off
  /// meanwhile (SQLite's procedure for rebuilding a table that others reference), and checked before the commit.
  static func migrate(_ db: Database, from version: Int) throws {
    guard version < latestVersion else { return }
    // Outside the transaction: inside one the pragma does nothing.
    try db.execute("PRAGMA foreign_keys = OFF")
    defer { try? db.execute("PRAGMA foreign_keys = ON") }
    try db.transaction {
      // Read again inside the write lock: another connection may have migrated meanwhile.
      let current = try db.pragma("user_version")?.int ?? 0
      guard current < latestVersion else { return }
      for index in current..<latestVersion { try db.executeScript(migrations[index]) }
      if current == 0 { try db.execute("PRAGMA application_id = \(applicationID)") }
      if let row = try db.query("PRAGMA foreign_key_check").first {
        throw NotebookError.invalidArgument("migrating to schema version \(latestVersion) broke a foreign key: \(row)")
      }
      try db.execute("PRAGMA user_version = \(latestVersion)")
    }
  }

  /// Version 1: the schema of design/notebook.md section B.2. Every table is STRICT; times are Unix milliseconds;
  /// hashes are lowercase SHA-256 hex. `INTEGER PRIMARY KEY` (not `INT`) makes the id an alias of the rowid.
  /// JSON columns (environment.extra, cell.tags, artifact.shape and meta) have no `json_valid` CHECK: with
  /// `trusted_schema=OFF`, SQLite 3.40 refuses json_valid inside the schema ("unsafe use"), so the notebook checks
  /// JSON before writing it (`Notebook.requireJSON`).
  static let version1 = """
    CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
    INSERT INTO meta(key, value) VALUES ('format', 'lathe-notebook'),
      ('created_at', CAST(strftime('%s', 'now') AS INTEGER) * 1000);

    CREATE TABLE blob(
      hash TEXT PRIMARY KEY NOT NULL CHECK(length(hash) = 64),
      size INTEGER NOT NULL CHECK(size >= 0),
      codec TEXT NOT NULL CHECK(codec IN ('raw', 'zlib', 'chunked', 'external')),
      content BLOB,
      CHECK((codec IN ('chunked', 'external')) = (content IS NULL))) STRICT;
    -- 1 MiB pieces of a 'chunked' blob. No foreign key: chunks are written before their blob row.
    CREATE TABLE blob_chunk(
      hash TEXT NOT NULL CHECK(length(hash) = 64),
      idx INTEGER NOT NULL CHECK(idx >= 0),
      content BLOB NOT NULL,
      UNIQUE(hash, idx)) STRICT;

    CREATE TABLE environment(
      env_id INTEGER PRIMARY KEY,
      env_hash TEXT UNIQUE NOT NULL CHECK(length(env_hash) = 64),
      lathe_version TEXT NOT NULL, lathe_commit TEXT, build_config TEXT, swift_version TEXT, os TEXT,
      cpu_model TEXT, n_cores INTEGER, mem_bytes INTEGER, blas TEXT, blas_threads INTEGER,
      sqlite_version TEXT, line_editor TEXT,
      extra TEXT) STRICT;

    CREATE TABLE cell(
      cell_id TEXT PRIMARY KEY NOT NULL CHECK(length(cell_id) BETWEEN 1 AND 64),
      position REAL NOT NULL,
      kind TEXT NOT NULL CHECK(kind IN ('code', 'markdown', 'raw')),
      source TEXT NOT NULL,
      source_hash TEXT NOT NULL CHECK(length(source_hash) = 64),
      tags TEXT,
      updated_at INTEGER NOT NULL) STRICT;

    CREATE TABLE session(
      session_id INTEGER PRIMARY KEY,
      mode TEXT NOT NULL CHECK(mode IN ('repl', 'run', 'rerun', 'kernel')),
      status TEXT NOT NULL CHECK(status IN ('running', 'closed', 'crashed')),
      started_at INTEGER NOT NULL, ended_at INTEGER,
      env_id INTEGER NOT NULL REFERENCES environment(env_id),
      pid INTEGER, host TEXT, seed INTEGER, remark TEXT) STRICT;

    CREATE TABLE run(
      run_id INTEGER PRIMARY KEY,
      session_id INTEGER NOT NULL REFERENCES session(session_id),
      seq INTEGER NOT NULL,
      cell_id TEXT REFERENCES cell(cell_id) ON DELETE SET NULL,
      source TEXT NOT NULL,
      source_hash TEXT NOT NULL CHECK(length(source_hash) = 64),
      status TEXT NOT NULL CHECK(status IN ('running', 'ok', 'error', 'interrupted', 'crashed', 'cached')),
      started_at INTEGER NOT NULL, ended_at INTEGER,
      wall_ns INTEGER, cpu_ns INTEGER, peak_rss INTEGER, seed INTEGER, threads INTEGER, cache_key TEXT,
      UNIQUE(session_id, seq)) STRICT;
    CREATE INDEX run_by_cell ON run(cell_id, run_id);

    -- One row per MIME alternative: alternatives of one display share idx.
    CREATE TABLE output(
      run_id INTEGER NOT NULL REFERENCES run(run_id) ON DELETE CASCADE,
      idx INTEGER NOT NULL,
      mime TEXT NOT NULL DEFAULT 'text/plain',
      kind TEXT NOT NULL CHECK(kind IN ('stdout', 'stderr', 'result', 'display', 'error', 'progress', 'warning')),
      text TEXT,
      blob_hash TEXT REFERENCES blob(hash),
      created_at INTEGER NOT NULL,
      CHECK((text IS NULL) <> (blob_hash IS NULL)),
      PRIMARY KEY(run_id, idx, mime)) STRICT;
    CREATE INDEX output_by_blob ON output(blob_hash) WHERE blob_hash IS NOT NULL;

    CREATE TABLE metric(
      run_id INTEGER NOT NULL REFERENCES run(run_id) ON DELETE CASCADE,
      key TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0,
      value REAL,  -- NULL stands for NaN: SQLite stores a bound NaN as NULL
      recorded_at INTEGER NOT NULL,
      PRIMARY KEY(run_id, key, step)) STRICT, WITHOUT ROWID;
    CREATE TABLE param(
      run_id INTEGER NOT NULL REFERENCES run(run_id) ON DELETE CASCADE,
      key TEXT NOT NULL, value TEXT NOT NULL,
      PRIMARY KEY(run_id, key)) STRICT, WITHOUT ROWID;
    CREATE TABLE input(
      run_id INTEGER NOT NULL REFERENCES run(run_id) ON DELETE CASCADE,
      role TEXT NOT NULL, uri TEXT NOT NULL, sha256 TEXT, size INTEGER,
      PRIMARY KEY(run_id, role, uri)) STRICT, WITHOUT ROWID;

    CREATE TABLE artifact(
      artifact_id INTEGER PRIMARY KEY,
      run_id INTEGER REFERENCES run(run_id) ON DELETE SET NULL,
      name TEXT NOT NULL,
      kind TEXT NOT NULL CHECK(kind IN ('tensor', 'model', 'image', 'table', 'curve', 'report', 'file')),
      blob_hash TEXT NOT NULL REFERENCES blob(hash),
      dtype TEXT, shape TEXT, meta TEXT,
      created_at INTEGER NOT NULL) STRICT;
    CREATE INDEX artifact_by_name ON artifact(name, artifact_id);
    CREATE INDEX artifact_by_blob ON artifact(blob_hash);

    CREATE TABLE cache(
      cache_key TEXT PRIMARY KEY NOT NULL CHECK(length(cache_key) = 64),
      run_id INTEGER REFERENCES run(run_id) ON DELETE CASCADE,
      value_hash TEXT NOT NULL REFERENCES blob(hash),
      created_at INTEGER NOT NULL, last_hit_at INTEGER, hits INTEGER NOT NULL DEFAULT 0) STRICT;
    """

  /// Version 2: the `parts` codec. A `parts` blob's content lists the SHA-256 and size of each part (see
  /// PartsManifest); each part is a `raw` blob of its own, so blobs that share content share parts. SQLite cannot
  /// change a CHECK in place, so `blob` is rebuilt with the same rows (outputs, artifacts and caches refer to it by
  /// name, and find the new table under the old name).
  static let version2 = """
    CREATE TABLE blob_v2(
      hash TEXT PRIMARY KEY NOT NULL CHECK(length(hash) = 64),
      size INTEGER NOT NULL CHECK(size >= 0),
      codec TEXT NOT NULL CHECK(codec IN ('raw', 'zlib', 'chunked', 'external', 'parts')),
      content BLOB,
      CHECK((codec IN ('chunked', 'external')) = (content IS NULL))) STRICT;
    INSERT INTO blob_v2(hash, size, codec, content) SELECT hash, size, codec, content FROM blob;
    DROP TABLE blob;
    ALTER TABLE blob_v2 RENAME TO blob;
    """
}
