// lora as a training method on a tiny decoder: at initialisation the logits are the base's exactly; training moves
// the adapters and nothing else; merging them (compress's finalize, or runnable) gives the adapted logits within
// 1e-5; bad targets are errors that name the matrices. kd with a language model teacher: the inference model
// teaches a decoder student and is left as it was.

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels
import LatheNN
import LatheTensor

private func tinyDecoder(seed: UInt64 = 1) throws -> TrainableDecoder {
  let config = try LlamaConfig(vocabularySize: 17, dimension: 32, contextLength: 64, headCounts: [4, 4], kvHeadCounts: [2, 2],
                               ffnWidths: [48, 48], headDimension: 8)
  return try TrainableDecoder(config: config, seed: seed)
}

private let stream: [Int] = (0..<300).map { ($0 * 7 + $0 / 5) % 17 }
private let probe = try! Tensor((0..<12).map { Float(($0 * 5) % 17) }, shape: [1, 12])

private func recipe(steps: Int) -> Recipe {
  var r = Recipe()
  r.steps = steps; r.sequence = 12; r.batch = 4; r.lr = 1e-2; r.seed = 2
  return r
}

private func logits(_ d: TrainableDecoder) throws -> [Float] { try Autograd.noGrad { try d.logits(probe).value.scalars } }

@Test func loraStartsAtTheBaseAndTrainsOnlyItsAdapters() throws {
  let d = try tinyDecoder()
  let base = try logits(d)
  let lora = try LoRA(rank: 4, alpha: 8, targets: ["attn_q", "attn_v", "ffn_down"], seed: 3)
  try lora.prepare(d)
  #expect(d.adapters.count == 6)
  #expect(try logits(d) == base, "B at zero must leave the output unchanged")
  let baseWeights = d.blocks.flatMap(\.parameters).map(\.value.scalars) + [d.embedding.value.scalars]
  let adaptersBefore = d.adapterParameters.map(\.value.scalars)
  _ = try LanguageModelTrainer.train(d, tokens: stream, recipe: recipe(steps: 5), methods: [lora])
  #expect(d.blocks.flatMap(\.parameters).map(\.value.scalars) + [d.embedding.value.scalars] == baseWeights, "a base weight moved")
  #expect(d.adapterParameters.map(\.value.scalars) != adaptersBefore)
  #expect(try logits(d) != base)
  #expect(lora.adapterParameters == 2 * ((32 + 32) * 4 + (16 + 32) * 4 + (32 + 48) * 4))
}

@Test func mergedLoRAGivesTheAdaptedLogits() throws {
  let d = try tinyDecoder(seed: 4)
  let lora = try LoRA(rank: 2, alpha: 4, targets: ["all"], seed: 5)
  _ = try LanguageModelTrainer.train(d, tokens: stream, recipe: recipe(steps: 4), methods: [lora])
  let adapted = try logits(d)
  let merged = try lora.finalize(d) as? TrainableDecoder
  let m = try #require(merged)
  #expect(m.adapters.isEmpty)
  for (a, b) in zip(try logits(m), adapted) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b)), "\(a) against \(b)") }
  // The inference form folds the adapters too.
  let model = try d.runnable()
  let ids = (0..<12).map { ($0 * 5) % 17 }
  let inference = try model.forward(ids, cache: try model.makeCache(capacity: 12), allLogits: true)
  for (a, b) in zip(inference, adapted) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b))) }
  // In place, too.
  try d.mergeAdapters()
  for (a, b) in zip(try logits(d), adapted) { #expect(abs(a - b) <= 1e-5 * max(1, abs(b))) }
}

@Test func loraTargetsAreCheckedByName() throws {
  #expect(throws: TechniqueError.self) { try LoRA(rank: 4, alpha: 8, targets: ["q_proj"], seed: 0) }
  #expect(throws: TechniqueError.self) { try LoRA(rank: 0, alpha: 8, targets: ["attn_q"], seed: 0) }
  let t = try LoRA.entry.make([:])
  #expect(t.description == "lora(rank: 8, alpha: 16.0, targets: [\"attn_q\", \"attn_v\"], seed: 0)")
  #expect(try Techniques.parse(t.description).description == t.description)
  // On a model that is not a decoder it says so.
  let mlp = try Sequential.mlp([4, 4], seed: 1)
  #expect(throws: TechniqueError.self) { try (t as? LoRA)?.prepare(mlp) }
}

@Test func aLanguageModelTeachesThroughItsInferenceKernels() throws {
  let teacherDecoder = try tinyDecoder(seed: 6)
  let teacher = try teacherDecoder.runnable()
  let student = try tinyDecoder(seed: 7)
  let teacherWeights = teacher.namedWeights.map { try? $0.weight.denseF32().scalars }
  let kd = try KnowledgeDistillation.entry.make(["teacher": .object(teacher), "temperature": .float(2), "alpha": .float(0.5)])
  let method = try #require(kd as? KnowledgeDistillation)
  let before = try logits(student)
  let record = try LanguageModelTrainer.train(student, tokens: stream, recipe: recipe(steps: 3), methods: [method])
  #expect(method.teacherForwards == record.steps)
  #expect(try logits(student) != before)
  #expect(teacher.namedWeights.map { try? $0.weight.denseF32().scalars } == teacherWeights)
  // The teacher's logits are the inference model's: the distillation term against itself is zero.
  let selfKD = try KnowledgeDistillation(teacher: InferenceTeacher(teacher), temperature: 1, alpha: 1)
  let own = try Autograd.noGrad { try teacherDecoder.logits(probe) }.reshaped(to: [12, 17])
  let term = try selfKD.distillation(student: own, inputs: probe).value.scalars[0]
  #expect(abs(term) < 1e-5)
}
