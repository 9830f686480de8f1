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

extension TestPaths {
  /// The `lathe` executable the tests drive: `$LATHE_BINARY`, else the debug build `swift build --build-tests` makes.
  public static var latheBinary: URL {
    if let path = ProcessInfo.processInfo.environment["LATHE_BINARY"] { return URL(fileURLWithPath: path) }
    return packageRoot.appendingPathComponent(".build/debug/lathe")
  }

  /// Runs the lathe binary with arguments; returns exit status, stdout and stderr.
  @discardableResult
  public static func runLathe(_ arguments: [String], input: String? = nil, cwd: URL? = nil,
                              environment: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = latheBinary
    p.arguments = arguments
    if let cwd { p.currentDirectoryURL = cwd }
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    p.environment = env
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let input { inp.fileHandleForWriting.write(Data(input.utf8)) }
    try? inp.fileHandleForWriting.close()
    // Read both pipes before waiting, so a chatty child never blocks on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }
    let outData = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: outData.data, as: UTF8.self), String(decoding: errData, as: UTF8.self))
  }
}
