// Replays kept inputs through a target's check (`lathe fuzz-replay`): each must end without a finding, within the
// fuzzer's 10 s limit per input.

import Foundation

public enum FuzzReplayer {
  /// The fuzzer's `-timeout`: an input that runs longer is a hang.
  public static let secondsPerInput = 10.0

  /// Replays every file of `paths` (folders: their files, in name order, without `.keep`); prints one line per
  /// finding and a summary; returns the exit status (0: no finding, 1: findings, 2: unreadable paths).
  public static func replay(_ target: FuzzTarget, paths: [String]) -> Int32 {
    target.prepare()
    var files: [String] = []
    for path in paths {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        FileHandle.standardError.write(Data("lathe fuzz-replay: \(path) does not exist\n".utf8))
        return 2
      }
      if isDirectory.boolValue {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).filter { $0 != ".keep" }.sorted()
        files += names.map { path + "/" + $0 }
      } else {
        files.append(path)
      }
    }
    var findings = 0
    for file in files {
      guard let data = FileManager.default.contents(atPath: file) else {
        print("\(file): cannot be read"); findings += 1; continue
      }
      let started = Date()
      do { try target.check([UInt8](data)) } catch {
        print("\(file): \(error)"); findings += 1; continue
      }
      let seconds = Date().timeIntervalSince(started)
      if seconds > secondsPerInput { print("\(file): took \(String(format: "%.1f", seconds)) s, past the fuzzer's \(Int(secondsPerInput)) s"); findings += 1 }
    }
    print("fuzz-replay \(target.rawValue): \(files.count) inputs, \(findings) findings")
    return findings == 0 ? 0 : 1
  }
}
