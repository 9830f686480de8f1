// Training methods: what `train(m, data, t…, recipe)` lets a technique change in the one training loop. Every hook
// has a default that changes nothing, so a method implements only what it needs: convert the model before
// training, supply soft targets for the exact batch the student sees, add loss terms, choose the optimised
// parameters, act after each step. A method that holds trained parts keeps them itself, updated in place.

import LatheTensor

public protocol TrainingMethod: AnyObject {
  /// Called once before training: a method may swap layers for trainable twins, freeze parts, attach state.
  func prepare(_ model: Module) throws
  /// The parameters to optimise, given those the model would train; nil keeps them.
  func trainableParameters(of model: Module, _ parameters: [Variable]) throws -> [Variable]?
  /// Soft targets [N, classes] for the batch `inputs` (exactly what the model sees this step, augmentation
  /// included) with `labels`; nil keeps the labels. The base loss is then cross-entropy to them.
  func targets(inputs: Tensor, labels: Tensor) throws -> Tensor?
  /// The step's loss: `base` is the loss so far (cross-entropy, or the previous method's loss), `logits` the model's
  /// output on `inputs`.
  func loss(_ base: Variable, logits: Variable, inputs: Tensor, labels: Tensor) throws -> Variable
  /// Called after each optimiser step (step counts from 1).
  func afterStep(_ model: Module, step: Int) throws
}

extension TrainingMethod {
  public func prepare(_ model: Module) throws {}
  public func trainableParameters(of model: Module, _ parameters: [Variable]) throws -> [Variable]? { nil }
  public func targets(inputs: Tensor, labels: Tensor) throws -> Tensor? { nil }
  public func loss(_ base: Variable, logits: Variable, inputs: Tensor, labels: Tensor) throws -> Variable { base }
  public func afterStep(_ model: Module, step: Int) throws {}
}
