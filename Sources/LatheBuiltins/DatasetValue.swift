// Datasets as values of the language: a name, images and labels as tensors, a count and a class count.

import LatheData
import LatheLang
import LatheTensor

/// `digits()` prints as `dataset digits: 1797 images [1, 8, 8], 10 classes`; `d.images`, `d.labels` are tensors.
public final class DatasetValue: HostObject {
  public let dataset: Dataset
  public init(_ dataset: Dataset) { self.dataset = dataset }

  public var typeName: String { "dataset" }
  public var description: String {
    "dataset \(dataset.name): \(dataset.count) images \(dataset.imageShape), \(dataset.classCount) classes"
  }
  public var summary: String {
    "dataset \(dataset.name) \(dataset.count) × \(dataset.imageShape), \(dataset.classCount) classes"
  }
  public var memberNames: [String] { ["count", "classes", "shape", "images", "labels", "name"] }

  public func member(_ name: String) throws -> Value? {
    switch name {
    case "count": return .int(dataset.count)
    case "classes": return .int(dataset.classCount)
    case "shape": return .list(dataset.imageShape.map { .int($0) })
    case "images": return .host(TensorValue(dataset.images))
    case "labels": return .host(TensorValue(dataset.labels))
    case "name": return .string(dataset.name)
    default: return nil
    }
  }
}
