// Records: the plain values the notebook stores and returns (modes, statuses, kinds, sessions, runs, outputs, cells).
import Foundation

/// How a session was started: `lathe repl`, `lathe run`, `lathe rerun`, or a Jupyter-style kernel.
public enum SessionMode: String, CaseIterable, Sendable { case repl, run, rerun, kernel }

public enum SessionStatus: String, CaseIterable, Sendable { case running, closed, crashed }

/// A run's state. `running` is written at the start so a crash is visible; `cached` means replayed from the cache.
public enum RunStatus: String, CaseIterable, Sendable { case running, ok, error, interrupted, crashed, cached }

public enum CellKind: String, CaseIterable, Sendable { case code, markdown, raw }

/// What stream or role an output came from.
public enum OutputKind: String, CaseIterable, Sendable { case stdout, stderr, result, display, error, progress, warning }

/// One row of the `environment` table: where and with what a session ran. `lathe --version` prints the same fields.
public struct EnvironmentInfo: Equatable, Sendable {
  public var latheVersion: String
  public var latheCommit: String?
  public var buildConfig: String?
  public var swiftVersion: String?
  public var os: String?
  public var cpuModel: String?
  public var coreCount: Int?
  public var memoryBytes: Int64?
  public var blas: String?
  public var blasThreads: Int?
  public var lineEditor: String?
  /// Any further facts, as a JSON text (checked with SQLite's `json_valid` before it is stored).
  public var extra: String?
  /// Filled in by `Notebook.recordEnvironment` from the linked library; ignored when passed in.
  public var sqliteVersion: String?

  public init(latheVersion: String, latheCommit: String? = nil, buildConfig: String? = nil,
              swiftVersion: String? = nil, os: String? = nil, cpuModel: String? = nil, coreCount: Int? = nil,
              memoryBytes: Int64? = nil, blas: String? = nil, blasThreads: Int? = nil, lineEditor: String? = nil,
              extra: String? = nil, sqliteVersion: String? = nil) {
    self.latheVersion = latheVersion; self.latheCommit = latheCommit; self.buildConfig = buildConfig
    self.swiftVersion = swiftVersion; self.os = os; self.cpuModel = cpuModel; self.coreCount = coreCount
    self.memoryBytes = memoryBytes; self.blas = blas; self.blasThreads = blasThreads; self.lineEditor = lineEditor
    self.extra = extra; self.sqliteVersion = sqliteVersion
  }

  /// The fields in column order, as SQL values: lathe_version ... extra (without env_hash).
  var columnValues: [SQLValue] {
    [SQLValue(latheVersion), SQLValue(latheCommit), SQLValue(buildConfig), SQLValue(swiftVersion), SQLValue(os),
     SQLValue(cpuModel), SQLValue(coreCount), SQLValue(memoryBytes), SQLValue(blas), SQLValue(blasThreads),
     SQLValue(sqliteVersion), SQLValue(lineEditor), SQLValue(extra)]
  }

  static let columnNames = "lathe_version, lathe_commit, build_config, swift_version, os, cpu_model, n_cores, "
    + "mem_bytes, blas, blas_threads, sqlite_version, line_editor, extra"

  /// A canonical encoding: each field as `name=length:value` or `name=-` for nil, one per line, in a fixed order.
  /// The length prefix makes it unambiguous whatever the values contain; `env_hash` is its SHA-256.
  var canonicalEncoding: String {
    let names = EnvironmentInfo.columnNames.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    return zip(names, columnValues).map { name, value -> String in
      switch value {
      case .null: return "\(name)=-"
      case .text(let text): return "\(name)=\(text.utf8.count):\(text)"
      default: return "\(name)=\(value)"
      }
    }.joined(separator: "\n")
  }

  init(row: [SQLValue]) throws {
    guard row.count == 13 else { throw NotebookError.invalidArgument("environment row has \(row.count) columns") }
    latheVersion = try requireString(row[0], column: "environment.lathe_version")
    latheCommit = row[1].string; buildConfig = row[2].string; swiftVersion = row[3].string; os = row[4].string
    cpuModel = row[5].string; coreCount = row[6].int; memoryBytes = row[7].int64; blas = row[8].string
    blasThreads = row[9].int; sqliteVersion = row[10].string; lineEditor = row[11].string; extra = row[12].string
  }
}

public struct SessionRecord: Equatable, Sendable {
  public var id: Int64
  public var mode: SessionMode
  public var status: SessionStatus
  /// Unix milliseconds.
  public var startedAt: Int64
  public var endedAt: Int64?
  public var environmentID: Int64
  public var pid: Int64?
  public var host: String?
  public var seed: Int64?
  public var remark: String?
}

/// One output, or one MIME alternative of an output (alternatives share `idx`).
public struct OutputRecord: Equatable, Sendable {
  public var idx: Int
  public var kind: OutputKind
  public var mime: String
  /// The text; for outputs kept in a blob, the blob decoded as UTF-8.
  public var text: String
  /// Set when the text was stored in a blob (larger than 64 KiB).
  public var blobHash: String?

  public init(idx: Int, kind: OutputKind, mime: String, text: String, blobHash: String? = nil) {
    self.idx = idx; self.kind = kind; self.mime = mime; self.text = text; self.blobHash = blobHash
  }
}

public struct RunRecord: Equatable, Sendable {
  public var id: Int64
  public var sessionID: Int64
  /// The `In [seq]` number, counted per session.
  public var seq: Int
  /// NULL for REPL lines; the cell of a script for `lathe run`.
  public var cellID: String?
  /// The exact code executed.
  public var source: String
  public var status: RunStatus
  public var startedAt: Int64
  public var endedAt: Int64?
  public var wallNs: Int64?
  public var cpuNs: Int64?
  public var peakRSS: Int64?
  public var seed: Int64?
  public var threads: Int?
  public var outputs: [OutputRecord]
}

public struct CellRecord: Equatable, Sendable {
  public var id: String
  public var position: Double
  public var kind: CellKind
  public var source: String
  public var updatedAt: Int64
  public var tags: [String] = []
}

public struct MetricRecord: Equatable, Sendable {
  public var key: String
  public var step: Int
  /// NaN when stored as NULL.
  public var value: Double
}

public struct ArtifactRecord: Equatable, Sendable {
  public var id: Int64
  public var runID: Int64?
  public var name: String
  public var kind: String
  public var blobHash: String
  public var size: Int64
  public var dtype: String?
  public var shape: String?
  public var meta: String?
  public var createdAt: Int64
}
