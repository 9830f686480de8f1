// What a file is, from its first bytes: so a loader given the wrong kind of file names the kind it found and the
// function that reads it, instead of misreading a GGUF header as a 14 GB safetensors one.

import Foundation

public enum FileFormat {
  /// A short name of the file's format ("GGUF", "safetensors", ...), or nil when the bytes are not one we know.
  public static func identify(path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    let head = [UInt8]((try? handle.read(upToCount: 64)) ?? Data())
    return identify(head)
  }

  public static func identify(_ head: [UInt8]) -> String? {
    func starts(_ s: [UInt8]) -> Bool { head.count >= s.count && Array(head.prefix(s.count)) == s }
    if starts(Array("GGUF".utf8)) { return "GGUF" }
    if starts(Array("SQLite format 3".utf8)) { return "SQLite (a Lathe notebook, if it ends in .lnb)" }
    if starts([0x4C, 0x56, 1]) { return "saved Lathe value" }
    if starts([0x93] + Array("NUMPY".utf8)) { return "numpy .npy" }
    if starts([0x50, 0x4B, 0x03, 0x04]) { return "zip (a PyTorch .pt checkpoint or numpy .npz)" }
    if starts([0x80]) && head.count > 1 && head[1] <= 5 { return "Python pickle (a PyTorch checkpoint)" }
    if starts([0x1F, 0x8B]) { return "gzip" }
    if head.count >= 9 {
      var n: UInt64 = 0
      for i in 0..<8 { n |= UInt64(head[i]) << (8 * UInt64(i)) }
      if n > 1, n < 1 << 30, head[8] == UInt8(ascii: "{") { return "safetensors" }
    }
    return nil
  }

  /// The builtin that reads a format, for error messages.
  public static func reader(of format: String) -> String {
    switch format {
    case "GGUF": return "load(path) reads it as a language model"
    case "safetensors": return "loadtensors(path) reads its tensors"
    case "saved Lathe value": return "load(name) reads values saved in the open notebook"
    default: return "Lathe has no reader for it"
    }
  }
}
