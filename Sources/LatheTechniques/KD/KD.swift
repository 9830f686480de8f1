// kd(teacher:, temperature:, alpha:): knowledge distillation (Hinton, Vinyals & Dean, 2015) as a training method.
// Each step the frozen teacher scores exactly the batch the student sees (after augmentation), and the loss is
//
//     (1 − α) · CE(student, labels) + α · T² · KL(softmax(teacher / T) ‖ softmax(student / T))
//
// The teacher runs without recording gradients (so batch norm uses its running statistics) and is never optimised:
// it stays bitwise unchanged.

import Foundation
import LatheModels
import LatheNN
import LatheTensor

public final class KnowledgeDistillation: TrainingTechnique {
  public let teacher: Module
  public let temperature: Double
  public let alpha: Double
  /// Teacher forward passes and examples run, over every training this value took part in (updated in place).
  public private(set) var teacherForwards = 0, teacherExamples = 0

  public init(teacher: Module, temperature: Double, alpha: Double) throws {
    guard temperature.isFinite, temperature > 0 else { throw TechniqueError("kd: temperature must be positive, got \(temperature)") }
    guard alpha.isFinite, (0...1).contains(alpha) else { throw TechniqueError("kd: alpha must be in [0, 1], got \(alpha)") }
    self.teacher = teacher; self.temperature = temperature; self.alpha = alpha
  }

  public var entry: TechniqueEntry { KnowledgeDistillation.entry }
  public var description: String {
    "kd(teacher: \(String(describing: type(of: teacher))) of \(teacher.parameterCount) parameters, temperature: \(TechniqueArgument.number(temperature)), alpha: \(TechniqueArgument.number(alpha)))"
  }
  public var fields: [(String, TechniqueArgument)] {
    [("temperature", .float(temperature)), ("alpha", .float(alpha)), ("teacherForwards", .int(teacherForwards)),
     ("teacherExamples", .int(teacherExamples))]
  }
  /// It holds a model, which a notebook keeps by itself.
  public func saved() throws -> [UInt8]? { nil }

  public static let entry = TechniqueEntry(
    name: "kd", roles: [.trainingMethod],
    parameters: [TechniqueParameter(required: "teacher", "the trained model whose softened outputs the student learns"),
                 TechniqueParameter("temperature", .float(1), "T: both outputs are softened by softmax(z / T)"),
                 TechniqueParameter("alpha", .float(0.9), "weight of the distillation term; 1 − alpha weighs cross-entropy to the labels")],
    doc: "Knowledge distillation for train(m, data, kd(...), recipe): each step the frozen teacher scores exactly the batch the student sees, and the loss is (1 − alpha)·cross-entropy + alpha·T²·KL(teacher/T ‖ student/T). The teacher is never changed; t.teacherForwards counts its passes.",
    example: "train(student, parts.train, kd(teacher: big, temperature: 1, alpha: 0.9), recipe(epochs: 60))",
    make: { a in
      // A language model teaches through its inference kernels (quantised as loaded, no gradients kept).
      let teacher: Module
      if case .object(let m as LlamaModel) = a["teacher"] { teacher = InferenceTeacher(m) } else {
        teacher = try a.object("teacher", Module.self, "a model (mlp(...), sequential(...), load(...), trainable(...))")
      }
      return try KnowledgeDistillation(teacher: teacher,
                                temperature: try a.double("temperature"), alpha: try a.double("alpha"))
    },
    decode: { _ in throw TechniqueError("load: a kd(...) value holds a model and is not saved by itself") })

  public func trainableParameters(of model: Module, _ parameters: [Variable]) throws -> [Variable]? {
    guard model !== teacher else { throw TechniqueError("kd: the teacher is the model being trained; give a separate teacher") }
    // Never optimise a tensor the teacher owns, even when the student shares layers with it.
    let owned = Set(teacher.parameters.map { ObjectIdentifier($0) })
    return parameters.filter { !owned.contains(ObjectIdentifier($0)) }
  }

  /// The distillation term alone: T²·KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch.
  public func distillation(student logits: Variable, inputs: Tensor) throws -> Variable {
    let teacherLogits = try Autograd.noGrad { try teacher.forward(Variable(inputs)).value }
    teacherForwards += 1
    teacherExamples += inputs.shape.first ?? 0
    // A language model's logits [B, T, vocab] meet the student's flattened [B·T, vocab].
    let matched = teacherLogits.shape != logits.shape && teacherLogits.count == logits.value.count
      ? try teacherLogits.reshaped(to: logits.shape) : teacherLogits
    guard matched.shape == logits.shape else {
      throw TechniqueError("kd: the teacher's outputs \(teacherLogits.shape) do not match the student's \(logits.shape)")
    }
    return try Loss.kl(logits, teacherLogits: matched, temperature: Float(temperature))
  }

  public func loss(_ base: Variable, logits: Variable, inputs: Tensor, labels: Tensor) throws -> Variable {
    try base.scaled(by: Float(1 - alpha)).add(try distillation(student: logits, inputs: inputs).scaled(by: Float(alpha)))
  }
}
