// Dataset: labelled images in two tensors, with seeded shuffles, splits, subsets and batches.

import LatheTensor

/// Images f32 [N, C, H, W] and labels i32 [N] in `0..<classCount`. Every operation copies into new tensors and
/// is deterministic given its seed.
///
///     let (train, test) = try Datasets.digits().split(fraction: 0.8, seed: 0)    // 1438 and 359 images
public struct Dataset {
  public var name: String
  /// f32 [N, C, H, W], contiguous.
  public private(set) var images: Tensor
  /// i32 [N], contiguous.
  public private(set) var labels: Tensor
  public let classCount: Int

  /// Checks the shapes and that every label lies in `0..<classCount`; copies tensors that are not contiguous.
  public init(name: String, images: Tensor, labels: Tensor, classCount: Int) throws {
    guard images.rank == 4 else {
      throw DataError.invalidArgument(op: "dataset", reason: "images must have shape [N, C, H, W], got \(images.shape)")
    }
    guard labels.rank == 1, labels.shape[0] == images.shape[0] else {
      throw DataError.invalidArgument(op: "dataset", reason: "labels must have shape [\(images.shape[0])], got \(labels.shape)")
    }
    guard classCount >= 1 else {
      throw DataError.invalidArgument(op: "dataset", reason: "classCount must be at least 1, got \(classCount)")
    }
    self.name = name
    self.images = try images.contiguous()
    self.labels = try labels.isContiguous && labels.dtype == .i32 ? labels : labels.copied(as: .i32)
    self.classCount = classCount
    let p = self.labels.storage.ints(at: self.labels.offset)
    for i in 0..<count where p[i] < 0 || Int(p[i]) >= classCount {
      throw DataError.invalidArgument(op: "dataset", reason: "label \(p[i]) of item \(i) is outside 0..<\(classCount)")
    }
  }

  /// The number of images.
  public var count: Int { images.shape[0] }
  /// [C, H, W].
  public var imageShape: [Int] { Array(images.shape.dropFirst()) }
  /// Floats in one image.
  var imageSize: Int { images.shape[1] * images.shape[2] * images.shape[3] }

  /// How many images each class has, indexed by label.
  public func labelCounts() -> [Int] {
    var counts = [Int](repeating: 0, count: classCount)
    let p = labels.storage.ints(at: labels.offset)
    for i in 0..<count { counts[Int(p[i])] += 1 }        // init checked every label is in range
    return counts
  }

  /// The images at `indices`, in that order (repeats allowed).
  public func subset(_ indices: [Int], name: String? = nil) throws -> Dataset {
    for (k, i) in indices.enumerated() where i < 0 || i >= count {
      throw DataError.invalidArgument(op: "subset", reason: "index \(i) (position \(k)) is out of range for \(count) images")
    }
    let size = imageSize
    let outImages = try Tensor(zeros: [indices.count] + imageShape, dtype: .f32, op: "subset")
    let outLabels = try Tensor(zeros: [indices.count], dtype: .i32, op: "subset")
    let src = images.storage.floats(at: images.offset), dst = outImages.storage.floats()
    let srcLabels = labels.storage.ints(at: labels.offset), dstLabels = outLabels.storage.ints()
    for (k, i) in indices.enumerated() {
      (dst + k * size).update(from: src + i * size, count: size)
      dstLabels[k] = srcLabels[i]
    }
    return try Dataset(name: name ?? self.name, images: outImages, labels: outLabels, classCount: classCount)
  }

  /// All images in an order drawn from `seed`.
  public func shuffled(seed: UInt64) throws -> Dataset {
    try subset(Dataset.permutation(count: count, seed: seed))
  }

  /// A seeded shuffle cut in two: the first `round(fraction · count)` images, then the rest.
  /// Not stratified: class proportions in each part follow from the shuffle.
  public func split(fraction: Double, seed: UInt64) throws -> (Dataset, Dataset) {
    guard fraction.isFinite, fraction >= 0, fraction <= 1 else {
      throw DataError.invalidArgument(op: "split", reason: "fraction must be in [0, 1], got \(fraction)")
    }
    let order = Dataset.permutation(count: count, seed: seed)
    let cut = Int((fraction * Double(count)).rounded())
    return (try subset(Array(order[..<cut]), name: name + "/train"), try subset(Array(order[cut...]), name: name + "/test"))
  }

  /// The same seeded shuffle as `split(fraction:)`, cut so that the test part has exactly `test` items:
  /// `split(test: 360, seed: 0)` of the 1,797 digits gives 1,437 and 360.
  public func split(test: Int, seed: UInt64) throws -> (Dataset, Dataset) {
    guard test >= 0, test <= count else {
      throw DataError.invalidArgument(op: "split", reason: "test must be 0 to \(count) items, got \(test)")
    }
    let order = Dataset.permutation(count: count, seed: seed)
    let cut = count - test
    return (try subset(Array(order[..<cut]), name: name + "/train"), try subset(Array(order[cut...]), name: name + "/test"))
  }

  /// Copies of images [k, C, H, W] and labels [k] for the items in `range`.
  public func batch(_ range: Range<Int>) throws -> (images: Tensor, labels: Tensor) {
    guard range.lowerBound >= 0, range.upperBound <= count else {
      throw DataError.invalidArgument(op: "batch", reason: "range \(range) is out of bounds for \(count) images")
    }
    let size = imageSize, k = range.count
    let outImages = try Tensor(zeros: [k] + imageShape, dtype: .f32, op: "batch")
    let outLabels = try Tensor(zeros: [k], dtype: .i32, op: "batch")
    outImages.storage.floats().update(from: images.storage.floats(at: images.offset) + range.lowerBound * size, count: k * size)
    outLabels.storage.ints().update(from: labels.storage.ints(at: labels.offset) + range.lowerBound, count: k)
    return (outImages, outLabels)
  }

  /// A permutation of `0..<count` (Fisher–Yates) whose swaps come from `CounterRandom` draws of `seed`.
  public static func permutation(count: Int, seed: UInt64) -> [Int] {
    var order = Array(0..<max(0, count))
    var i = order.count - 1
    while i > 0 {
      // high 64 bits of bits · (i + 1): a draw in 0...i with negligible bias
      let j = Int(CounterRandom.bits(seed: seed, index: UInt64(i)).multipliedFullWidth(by: UInt64(i + 1)).high)
      order.swapAt(i, j)
      i -= 1
    }
    return order
  }
}
