// A linear layer whose weight is a compression technique's packed matrix, run as it is: each input row goes through
// the technique's own matrix-vector product, which reads the packed bytes. It trains nothing (a deployed layer);
// `compress(model, rtn(...))` puts it in place of a Linear.

import LatheTensor

public final class PackedLinear: Module {
  public let weight: any CompressedMatrix
  /// The bias of the Linear it replaced, kept in f32.
  public let bias: Tensor?
  public var inFeatures: Int { weight.cols }
  public var outFeatures: Int { weight.rows }

  public init(weight: any CompressedMatrix, bias: Tensor?) throws {
    guard weight.shape.count == 2 else { throw TensorError.invalidArgument(op: "packed linear", reason: "the weight must be a matrix, got shape \(weight.shape)") }
    if let bias, bias.shape != [weight.rows] {
      throw TensorError.shapeMismatch(op: "packed linear bias", lhs: bias.shape, rhs: [weight.rows])
    }
    self.weight = weight; self.bias = try bias.map { try $0.copied(as: .f32) }
  }

  /// Nothing trains: the packed weight is the deployed form.
  public var parameters: [Variable] { [] }
  public var summary: String {
    "PackedLinear(\(inFeatures) → \(outFeatures), \(weight.technique), \(weight.byteCount) bytes)"
  }

  /// Bytes of the layer: the packed weight and the f32 bias.
  public var byteCount: Int { weight.byteCount + (bias?.count ?? 0) * 4 }

  public func forward(_ x: Variable) throws -> Variable {
    guard x.shape.last == inFeatures else {
      throw TensorError.shapeMismatch(op: "linear", lhs: x.shape, rhs: [outFeatures, inFeatures])
    }
    let input = try x.value.copied(as: .f32)          // contiguous f32, offset 0
    let rows = input.count / inFeatures
    var out = try Tensor(zeros: Array(x.shape.dropLast()) + [outFeatures], op: "packed linear")
    let y = try out.mutablePointer()
    let xs = UnsafePointer(input.readPointer())
    let threads = rows * inFeatures * outFeatures >= 1 << 22 ? Int.max : 1
    for r in 0..<rows { try weight.matvec(xs + r * inFeatures, into: y + r * outFeatures, threads: threads) }
    if let bias {
      let b = bias.scalars
      for r in 0..<rows { for j in 0..<outFeatures { y[r * outFeatures + j] += b[j] } }
    }
    return withExtendedLifetime(input) { Variable(out) }
  }
}
