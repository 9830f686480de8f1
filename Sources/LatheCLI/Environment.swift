// The facts of the machine and build a session ran with: the notebook's environment row and `lathe --version`.

import Foundation
import CBLAS
@preconcurrency import CReadline
import LatheNotebook

public enum LatheVersion {
  public static let version = "0.1.0"
  #if DEBUG
  public static let buildConfig = "debug"
  #else
  public static let buildConfig = "release"
  #endif
}

public enum MachineEnvironment {
  public static func current() -> EnvironmentInfo {
    var uts = utsname()
    uname(&uts)
    func field<T>(_ value: T) -> String {
      withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self) }
    }
    let os = "\(field(uts.sysname)) \(field(uts.release)) \(field(uts.machine))"
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
      .split(separator: "\n").first(where: { $0.hasPrefix("model name") })
      .flatMap { $0.split(separator: ":", maxSplits: 1).last }
      .map { $0.trimmingCharacters(in: .whitespaces) }
    let blas = openblas_get_config().map { String(cString: $0) }
    let readline = rl_library_version.map { "GNU readline " + String(cString: $0) }
    var swift = "unknown"
    // `compiler(...)` tests the compiler; `swift(...)` would test the package's language mode (5).
    #if compiler(>=6.4)
    swift = "6.4 or later"
    #elseif compiler(>=6.3)
    swift = "6.3"
    #elseif compiler(>=6.2)
    swift = "6.2"
    #elseif compiler(>=6.0)
    swift = "6.0"
    #endif
    return EnvironmentInfo(
      latheVersion: LatheVersion.version,
      latheCommit: ProcessInfo.processInfo.environment["LATHE_COMMIT"],
      buildConfig: LatheVersion.buildConfig,
      swiftVersion: swift,
      os: os,
      cpuModel: cpu,
      coreCount: ProcessInfo.processInfo.activeProcessorCount,
      memoryBytes: Int64(ProcessInfo.processInfo.physicalMemory),
      blas: blas,
      blasThreads: Int(openblas_get_num_threads()),
      lineEditor: readline,
      extra: nil)
  }

  /// `lathe --version`: the same fields as the notebook's environment row.
  public static func versionText() -> String {
    let e = current()
    let rows: [(String, String?)] = [
      ("lathe", e.latheVersion + " (" + (e.buildConfig ?? "?") + ")"), ("commit", e.latheCommit), ("swift", e.swiftVersion),
      ("os", e.os), ("cpu", e.cpuModel), ("cores", e.coreCount.map(String.init)),
      ("memory", e.memoryBytes.map { String(format: "%.1f GiB", Double($0) / 1073741824) }), ("blas", e.blas),
      ("blas threads", e.blasThreads.map(String.init)), ("sqlite", Database.libraryVersion), ("line editor", e.lineEditor),
    ]
    return rows.compactMap { name, value in value.map { "\(name): \($0)" } }.joined(separator: "\n")
  }
}
