// A loaded language model as a frozen teacher module: forward(ids [B, T]) runs each sequence through the inference
// kernels (the model's own quantised weights, a fresh KV cache) and returns logits [B, T, vocab] with no graph. It
// has no parameters, so nothing of it is ever trained.

import LatheNN
import LatheTensor

public final class InferenceTeacher: Module {
  public let model: LlamaModel
  public init(_ model: LlamaModel) { self.model = model }
  public var parameters: [Variable] { [] }
  public var summary: String { "teacher \(model.name)" }

  public func forward(_ x: Variable) throws -> Variable {
    let ids = x.value
    guard ids.rank == 1 || ids.rank == 2, ids.count > 0 else {
      throw TensorError.invalidShape(op: "teacher", shape: ids.shape, reason: "needs token ids [batch, tokens]")
    }
    let batch = ids.rank == 1 ? 1 : ids.shape[0], t = ids.shape[ids.rank - 1], vocab = model.config.vocabularySize
    let values = ids.scalars
    var logits: [Float] = []
    logits.reserveCapacity(batch * t * vocab)
    for b in 0..<batch {
      let sequence = try values[(b * t)..<((b + 1) * t)].map { v -> Int in
        guard let i = Int(exactly: v), i >= 0, i < vocab else { throw TensorError.indexOutOfRange(op: "teacher", index: Int(v), size: vocab, axis: 1) }
        return i
      }
      let cache = try model.makeCache(capacity: t)
      logits += try model.forward(sequence, cache: cache, allLogits: true)
    }
    return Variable(try Tensor(logits, shape: ids.rank == 1 ? [t, vocab] : [batch, t, vocab]))
  }
}
