// Paths and helpers shared by the test targets.
import Foundation

public enum TestPaths {
  /// The package root, found from this file's location (Tests/LatheTestSupport/TestPaths.swift).
  public static var packageRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  }

  /// A fresh empty directory under the system temporary directory.
  public static func temporaryDirectory(_ label: String = "lathe") throws -> URL {
    let url = FileManager.default.temporaryDirectory
      .appendingPathComponent("\(label)-\(getpid())-\(UInt64.random(in: 0..<UInt64.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
  }
}
