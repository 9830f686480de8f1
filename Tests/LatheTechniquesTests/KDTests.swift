// kd as a training method: the teacher never changes, alpha 0 is plain cross-entropy, the distillation term's
// gradient matches finite differences, and the trainer calls the teacher once per step on the student's batch.

import Testing
@testable import LatheTechniques
import LatheNN
import LatheTensor

private func problem(_ n: Int = 48) throws -> (images: Tensor, labels: Tensor) {
  let images = try Tensor.randn([n, 12], seed: 5)
  let labels = try Tensor((0..<n).map { Float(($0 * 7) % 4) }, shape: [n])
  return (images, labels)
}

@Test func trainingWithKDLeavesTheTeacherBitwiseUnchanged() throws {
  let teacher = try Sequential.mlp([12, 16, 4], seed: 1), student = try Sequential.mlp([12, 8, 4], seed: 2)
  let before = teacher.parameters.map { $0.value.scalars }
  let kd = try KnowledgeDistillation(teacher: teacher, temperature: 3, alpha: 0.7)
  var recipe = Recipe()
  recipe.epochs = 2; recipe.batch = 16
  let (images, labels) = try problem()
  let studentBefore = student.parameters.map { $0.value.scalars }
  let record = try Trainer.train(student, images: images, labels: labels, recipe: recipe, methods: [kd])
  #expect(teacher.parameters.map { $0.value.scalars } == before)
  #expect(student.parameters.map { $0.value.scalars } != studentBefore)
  #expect(kd.teacherForwards == record.steps && kd.teacherExamples == 2 * 48)
  #expect(throws: TechniqueError.self) {
    _ = try Trainer.train(teacher, images: images, labels: labels, recipe: recipe, methods: [kd])
  }
}

@Test func alphaZeroIsPlainCrossEntropyAndAlphaOneIsTheDistillationTerm() throws {
  let teacher = try Sequential.mlp([12, 16, 4], seed: 1), student = try Sequential.mlp([12, 8, 4], seed: 2)
  let (images, labels) = try problem(8)
  let logits = try student.forward(Variable(images))
  let ce = try Loss.crossEntropy(logits, labels: labels)
  let zero = try KnowledgeDistillation(teacher: teacher, temperature: 4, alpha: 0)
  #expect(try zero.loss(ce, logits: logits, inputs: images, labels: labels).value.scalars == ce.value.scalars)
  let one = try KnowledgeDistillation(teacher: teacher, temperature: 4, alpha: 1)
  let kl = try one.distillation(student: logits, inputs: images).value.scalars[0]
  #expect(try one.loss(ce, logits: logits, inputs: images, labels: labels).value.scalars[0] == kl)
  #expect(kl > 0)
  // A student that copies the teacher has nothing to learn from it.
  let same = try KnowledgeDistillation(teacher: teacher, temperature: 2, alpha: 1)
  #expect(abs(try same.distillation(student: try teacher.forward(Variable(images)), inputs: images).value.scalars[0]) < 1e-5)
}

@Test(arguments: [1.0, 4.0])
func distillationGradientMatchesFiniteDifferences(temperature: Double) throws {
  let teacher = try Sequential.mlp([12, 16, 4], seed: 1)
  let (images, _) = try problem(3)
  let kd = try KnowledgeDistillation(teacher: teacher, temperature: temperature, alpha: 1)
  let start = try Tensor.randn([3, 4], seed: 9).scalars
  let x = Variable(try Tensor(start, shape: [3, 4]), requiresGrad: true)
  try kd.distillation(student: x, inputs: images).backward()
  let analytic = try #require(x.grad).scalars
  let h: Float = 1e-2
  for i in start.indices {
    var plus = start, minus = start
    plus[i] += h; minus[i] -= h
    let fp = try kd.distillation(student: Variable(try Tensor(plus, shape: [3, 4])), inputs: images).value.scalars[0]
    let fm = try kd.distillation(student: Variable(try Tensor(minus, shape: [3, 4])), inputs: images).value.scalars[0]
    let numeric = (Double(fp) - Double(fm)) / (2 * Double(h))
    #expect(abs(numeric - Double(analytic[i])) <= 2e-3 + 2e-2 * abs(numeric), "logit \(i): \(numeric) vs \(analytic[i])")
  }
}

@Test func kdIsATrainingMethodOfTheTable() throws {
  let teacher = try Sequential.mlp([12, 4], seed: 1)
  let t = try KnowledgeDistillation.entry.make(["teacher": .object(teacher)])
  #expect(t.roles == [.trainingMethod] && t is any TrainingTechnique)
  #expect(throws: TechniqueError.self) { try KnowledgeDistillation.entry.make(["teacher": .int(3)]) }
  #expect(throws: TechniqueError.self) { try KnowledgeDistillation.entry.make(["teacher": .object(teacher), "alpha": .float(1.5)]) }
}
