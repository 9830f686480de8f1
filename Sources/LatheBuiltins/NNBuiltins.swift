// Builtin rows for gradients and training: grad, detach, linear, mlp, sgd, adamw, cosine, recipe, train, evaluate.

import LatheLang
import LatheModels
import LatheNN
import LatheTechniques
import LatheTensor

/// A model (a module with parameters) as a value: `m.forward(x)`, `params(m)`, `train(m, data, recipe(...))`.
public final class ModuleValue: HostObject {
  public let module: Module
  /// What compress did, for a model it made.
  public let compression: CompressionReport?
  /// The training methods `train` ran on this model, in order: `compress(m)` makes the deployable form of those that
  /// have one.
  public internal(set) var trainedWith: [any TrainingTechnique] = []
  public init(_ module: Module, compression: CompressionReport? = nil) { self.module = module; self.compression = compression }
  public var typeName: String { "model" }
  public var description: String { module.summary }
  /// `model 9.0K params`, with what it was trained with and how it was compressed.
  public var summary: String {
    var text = "model \(LanguageModelValue.count(module.parameterCount)) params"
    if !trainedWith.isEmpty { text += ", trained with \(trainedWith.map(\.description).joined(separator: ", "))" }
    if let compression { text += ", compressed: \(compression.technique)" }
    return text
  }
  public var memberNames: [String] { ["forward", "parameters", "params", "tensors"] }

  /// Every weight by name: the parameters ("1.weight"), and packed layers' weights dequantised ("1.weight", rtn).
  var namedWeights: [(name: String, tensor: () throws -> Tensor, shape: [Int], dtype: String, bytes: Int)] {
    var out: [(name: String, tensor: () throws -> Tensor, shape: [Int], dtype: String, bytes: Int)] = []
    for (path, module) in module.leaves {
      let prefix = path.isEmpty ? "" : path + "."
      if let packed = module as? PackedLinear {
        let w = packed.weight
        out.append((prefix + "weight", { try w.dequantized() }, w.shape, String(w.technique.prefix { $0 != "(" }), w.byteCount))
        if let bias = packed.bias { out.append((prefix + "bias", { bias }, bias.shape, "f32", bias.count * 4)) }
        continue
      }
      for (name, v) in module.namedParameters {
        out.append((prefix + name, { v.value }, v.value.shape, v.value.dtype.rawValue, (v.value.dtype.bytes(forElements: v.value.count) ?? 0)))
      }
    }
    return out
  }

  public func index(_ items: [IndexValue]) throws -> Value {
    guard items.count == 1, case .single(.string(let name)) = items[0] else {
      throw LatheError("a model is indexed by a weight name, as in m[\"1.weight\"] (m.tensors lists them)", kind: .type)
    }
    let weights = namedWeights
    guard let w = weights.first(where: { $0.name == name }) else {
      var message = "the model has no weight \(Value.quote(name))"
      if let near = Spelling.nearest(name, in: weights.map(\.name)) { message += "; did you mean \(Value.quote(near))?" }
      throw LatheError(message + " (m.tensors lists them)")
    }
    return .host(TensorValue(try w.tensor()))
  }

  public func member(_ name: String) throws -> Value? {
    switch name {
    case "forward":
      let module = self.module
      return .function(Function(native: "forward", parameters: [ParameterSpec("x")], doc: "The model applied to x.",
                                example: "m.forward(x)") { c in
        .host(TensorValue(variable: try module.forward(try TensorBuiltins.variable(c[0], "forward: x"))))
      })
    case "parameters": return .list(module.parameters.map { .host(TensorValue(variable: $0)) })
    case "params": return .int(module.parameterCount)
    case "tensors":
      return .host(TableValue(columns: ["name", "shape", "dtype", "bytes"], rows: namedWeights.map { w in
        [.string(w.name), .list(w.shape.map { .int($0) }), .string(w.dtype), .int(w.bytes)]
      }))
    default: return nil
    }
  }
}

enum NNBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.add("grad", [ParameterSpec("f"), ParameterSpec("x")],
          doc: "The gradient of f (a function returning a scalar tensor) at x: a tensor, or a list for a list of x.",
          example: "grad(t => sum(t * t), tensor([1, 2, 3]))") { c in
      let f = try c.function(0)
      let many: Bool
      let inputs: [Variable]
      if case .list(let xs) = c[1], xs.allSatisfy({ if case .host = $0 { return true }; return false }), !xs.isEmpty {
        many = true
        inputs = try xs.map { Variable(try TensorBuiltins.tensor($0, "grad: x"), requiresGrad: true) }
      } else {
        many = false
        inputs = [Variable(try TensorBuiltins.tensor(c[1], "grad: x"), requiresGrad: true)]
      }
      let args: [Value] = many ? [.list(inputs.map { .host(TensorValue(variable: $0)) })] : [.host(TensorValue(variable: inputs[0]))]
      let result = try c.interpreter.call(.function(f), args)
      if case .int = result { throw LatheError("grad: f's result does not depend on x (it is a plain number; use tensor operations on x)") }
      if case .float = result { throw LatheError("grad: f's result does not depend on x (it is a plain number; use tensor operations on x)") }
      guard case .host(let h) = result, let out = h as? TensorValue else {
        throw LatheError("grad: f must return a tensor (a scalar one), got \(result.typeName)", kind: .type)
      }
      guard out.variable.requiresGrad else {
        throw LatheError("grad: f's result does not depend on x (use tensor operations on x)")
      }
      try out.variable.backward()
      let grads: [Value] = try inputs.map { v in .host(TensorValue(try v.grad ?? Tensor.zeros(v.value.shape))) }
      return many ? .list(grads) : grads[0]
    }
    r.add("detach", [ParameterSpec("x")], doc: "The same values, cut off from the gradient graph.", example: "detach(tensor([1, 2]))") { c in
      TensorBuiltins.wrap(try TensorBuiltins.variable(c[0], "detach: x").detached())
    }
    r.add("linear", [ParameterSpec("inFeatures"), ParameterSpec("outFeatures"), ParameterSpec("bias", default: .bool(true)),
                     ParameterSpec("seed", default: .int(0))],
          doc: "A Linear layer y = x·Wᵀ + b (W [out, in]), initialised from a seed.", example: "linear(64, 10)") { c in
      .host(ModuleValue(try Linear(try c.int(0), try c.int(1), bias: try c.bool(2), seed: UInt64(bitPattern: Int64(try c.int(3))))))
    }
    r.add("mlp", [ParameterSpec("widths"), ParameterSpec("activation", default: .string("relu")), ParameterSpec("seed", default: .int(0))],
          doc: "Flatten, then Linear layers of these widths with an activation between them.", example: "mlp([64, 32, 10])") { c in
      let widths = try c.list(0).map { v -> Int in
        guard case .int(let w) = v else { throw LatheError("mlp: widths must be ints, got \(v.typeName)", kind: .type) }
        return w
      }
      guard let kernel = UnaryKernel(rawValue: try c.string(1)), [.relu, .gelu, .silu, .tanh, .sigmoid].contains(kernel) else {
        throw LatheError("mlp: activation must be one of relu, gelu, silu, tanh, sigmoid", kind: .type)
      }
      return .host(ModuleValue(try Sequential.mlp(widths, activation: kernel, seed: UInt64(bitPattern: Int64(try c.int(2))))))
    }
    r.add("forward", [ParameterSpec("model"), ParameterSpec("x")], doc: "The model applied to x (also m.forward(x)).",
          example: "forward(mlp([4, 2]), zeros([1, 4]))") { c in
      .host(TensorValue(variable: try module(c[0], "forward").forward(try TensorBuiltins.variable(c[1], "forward: x"))))
    }
    r.add("params", [ParameterSpec("model"), ParameterSpec("technique", default: Value.none)],
          doc: "The number of trainable parameters; params(m, t): the parameters technique t adds to language model m (specstream: streams·d + 2·pruneRank·d; medusa: heads·(d² + d·vocab)).",
          example: "params(mlp([64, 10]))") { c in
      if !c.isNone(1) { return .int(try TrainingBuiltins.extraParameters(c)) }
      return .int(try module(c[0], "params").parameterCount)
    }
    r.add("variant", [ParameterSpec("t"), ParameterSpec("topK", default: Value.none), ParameterSpec("pruneThreshold", default: Value.none),
                      ParameterSpec("streamsOn", default: Value.none)],
          doc: "A copy of a trained specstream or medusa value with another draft width (topK), pruning threshold or stream placement (streamsOn: \"tree\" | \"accepted\"), sharing what it learned (stream embeddings, pruner, heads).",
          example: "variant(specstream(), topK: 2)") { c in
      guard case .host(let t as TechniqueValue) = c[0] else { throw LatheError("variant: 't' must be a specstream or medusa value, got \(c[0].typeName)", kind: .type) }
      let topK: Int? = c.isNone(1) ? nil : try c.int(1)
      let threshold: Double? = c.isNone(2) ? nil : try c.double(2)
      let streamsOn: String? = c.isNone(3) ? nil : try c.string(3)
      do {
        switch t.technique {
        case let ss as SpecStream: return .host(TechniqueValue(try ss.variant(topK: topK, pruneThreshold: threshold, streamsOn: streamsOn)))
        case let medusa as Medusa:
          guard threshold == nil else { throw LatheError("variant: medusa has no pruning threshold") }
          guard streamsOn == nil else { throw LatheError("variant: medusa has no streams (streamsOn)") }
          return .host(TechniqueValue(try medusa.variant(topK: topK ?? medusa.topK)))
        default: throw LatheError("variant: takes a specstream or medusa value, got \(t.technique.name)", kind: .type)
        }
      } catch let e as LatheError { throw e } catch { throw TechniqueBuiltins.error(error) }
    }
    registerLayers(r)
    registerRecipe(r)
  }

  static func seedArgument(_ c: NativeCall, _ i: Int) throws -> UInt64 { UInt64(bitPattern: Int64(try c.int(i))) }

  static func registerLayers(_ r: BuiltinRegistry) {
    r.add("conv", [ParameterSpec("inChannels"), ParameterSpec("outChannels"), ParameterSpec("kernel", default: .int(3)),
                   ParameterSpec("stride", default: .int(1)), ParameterSpec("padding", default: .int(0)),
                   ParameterSpec("dilation", default: .int(1)), ParameterSpec("groups", default: .int(1)),
                   ParameterSpec("bias", default: .bool(true)), ParameterSpec("seed", default: .int(0))],
          doc: "A 2-D convolution layer over [N, C, H, W] (groups = channels is depthwise).",
          example: "conv(1, 16, kernel: 3, padding: 1)") { c in
      .host(ModuleValue(try Conv2d(try c.int(0), try c.int(1), kernel: try c.int(2), stride: try c.int(3), padding: try c.int(4),
                                   dilation: try c.int(5), groups: try c.int(6), bias: try c.bool(7), seed: try seedArgument(c, 8))))
    }
    r.add("maxpool", [ParameterSpec("kernel", default: .int(2)), ParameterSpec("stride", default: Value.none)],
          doc: "Max pooling over kernel×kernel windows (stride defaults to the kernel).", example: "maxpool(2)") { c in
      .host(ModuleValue(try Pool2d(.max, kernel: try c.int(0), stride: c.isNone(1) ? nil : try c.int(1))))
    }
    r.add("avgpool", [ParameterSpec("kernel", default: .int(2)), ParameterSpec("stride", default: Value.none)],
          doc: "Average pooling over kernel×kernel windows.", example: "avgpool(2)") { c in
      .host(ModuleValue(try Pool2d(.average, kernel: try c.int(0), stride: c.isNone(1) ? nil : try c.int(1))))
    }
    r.add("act", [ParameterSpec("name", default: .string("relu"))],
          doc: "An activation layer: relu, gelu, silu, tanh or sigmoid.", example: "act(\"gelu\")") { c in
      guard let kernel = UnaryKernel(rawValue: try c.string(0)), [.relu, .gelu, .silu, .tanh, .sigmoid].contains(kernel) else {
        throw LatheError("act: name must be one of relu, gelu, silu, tanh, sigmoid", kind: .type)
      }
      return .host(ModuleValue(Activation(kernel)))
    }
    r.add("vit", [ParameterSpec("image"), ParameterSpec("patch", default: .int(4)), ParameterSpec("dim", default: .int(64)),
                  ParameterSpec("depth", default: .int(2)), ParameterSpec("heads", default: .int(4)), ParameterSpec("classes", default: .int(10)),
                  ParameterSpec("channels", default: .int(1)), ParameterSpec("seed", default: .int(0))],
          doc: "A small Vision Transformer: patch embedding, transformer blocks, mean pooling, a linear head.",
          example: "vit(28, patch: 7, dim: 32, depth: 2, heads: 4)") { c in
      .host(ModuleValue(try VisionTransformer(image: try c.int(0), channels: try c.int(6), patch: try c.int(1), dim: try c.int(2),
                                              depth: try c.int(3), heads: try c.int(4), classes: try c.int(5), seed: try seedArgument(c, 7))))
    }
    r.add("mha", [ParameterSpec("dim"), ParameterSpec("heads", default: .int(4)), ParameterSpec("causal", default: .bool(false)),
                  ParameterSpec("seed", default: .int(0))],
          doc: "Multi-head self-attention over [batch, tokens, dim].", example: "mha(32, heads: 4)") { c in
      .host(ModuleValue(try MultiHeadAttention(dim: try c.int(0), heads: try c.int(1), causal: try c.bool(2), seed: try seedArgument(c, 3))))
    }
    r.add("freeze", [ParameterSpec("model"), ParameterSpec("frozen", default: .bool(true)), ParameterSpec("layers", default: Value.none)],
          doc: "Stops (or with frozen: false, restarts) training of a model's parameters, or of a decoder's layers (layers: a list of indices or a range; the embedding and output norm stay as they are); returns the model.",
          example: "freeze(linear(4, 2))") { c in
      let m = try module(c[0], "freeze")
      let frozen = try c.bool(1)
      if c.isNone(2) {
        for p in m.parameters { p.frozen = frozen }
        return c[0]
      }
      guard let decoder = m as? TrainableDecoder else { throw LatheError("freeze: layers: is for a decoder from trainable(...), got \(m.summary)", kind: .type) }
      let indices: [Int]
      switch c[2] {
      case .int(let i): indices = [i]
      case .list(let items):
        indices = try items.map { v -> Int in
          guard case .int(let i) = v else { throw LatheError("freeze: layers must be ints, got \(v.typeName)", kind: .type) }
          return i
        }
      default: throw LatheError("freeze: layers must be an int or a list of ints (range(0, 10)), got \(c[2].typeName)", kind: .type)
      }
      let count = decoder.blocks.count
      for i in indices where i < -count || i >= count { throw LatheError("freeze: layer \(i) is not one of 0..<\(count)") }
      for i in indices { for p in decoder.blocks[(i + count) % count].parameters { p.frozen = frozen } }
      return c[0]
    }
    r.add("embedlayer", [ParameterSpec("vocab"), ParameterSpec("dim"), ParameterSpec("seed", default: .int(0))],
          doc: "A learned embedding table [vocab, dim]: integer ids [..] to vectors [.., dim].", example: "embedlayer(100, 16)") { c in
      .host(ModuleValue(try Embedding(vocab: try c.int(0), dim: try c.int(1), seed: try seedArgument(c, 2))))
    }
    r.add("dropoutlayer", [ParameterSpec("p", default: .float(0.5)), ParameterSpec("seed", default: .int(0))],
          doc: "Dropout while training (a fresh seeded mask per step), the identity in evaluate.", example: "dropoutlayer(0.1)") { c in
      .host(ModuleValue(try Dropout(Float(try c.double(0)), seed: try seedArgument(c, 1))))
    }
    r.add("batchnormlayer", [ParameterSpec("channels")],
          doc: "BatchNorm over [N, C, H, W]: batch statistics while training, running averages in evaluate.",
          example: "batchnormlayer(16)") { c in
      .host(ModuleValue(try BatchNorm2d(try c.int(0))))
    }
    r.add("groupnormlayer", [ParameterSpec("groups"), ParameterSpec("channels")],
          doc: "GroupNorm over [N, C, ...]: channels in groups, each normalised over its channels and positions; learned scale and shift.",
          example: "groupnormlayer(4, 16)") { c in
      .host(ModuleValue(try GroupNorm(groups: try c.int(0), channels: try c.int(1))))
    }
    r.add("flatten", doc: "A layer that flattens [N, ...] to [N, features].", example: "flatten()") { _ in .host(ModuleValue(Flatten())) }
    r.add("sequential", [ParameterSpec("layers")], doc: "Layers applied in order.",
          example: "sequential([conv(1, 8, padding: 1), act(), maxpool(2), flatten(), linear(8 * 14 * 14, 10)])") { c in
      .host(ModuleValue(Sequential(try c.list(0).map { try module($0, "sequential") })))
    }
  }

  static func module(_ v: Value, _ op: String) throws -> Module {
    guard case .host(let h) = v, let m = h as? ModuleValue else { throw LatheError("\(op): needs a model, got \(v.typeName)", kind: .type) }
    return m.module
  }

  static func registerRecipe(_ r: BuiltinRegistry) {
    r.add("sgd", [ParameterSpec("lr", default: .float(0.1)), ParameterSpec("momentum", default: .float(0)),
                  ParameterSpec("nesterov", default: .bool(false)), ParameterSpec("weightDecay", default: .float(0))],
          doc: "Stochastic gradient descent settings for recipe(optim:).", example: "sgd(lr: 0.1, momentum: 0.9)") { c in
      .record(Record([("optim", .string("sgd")), ("lr", c[0]), ("momentum", c[1]), ("nesterov", c[2]), ("weightDecay", c[3])]))
    }
    r.add("adamw", [ParameterSpec("lr", default: .float(1e-3)), ParameterSpec("weightDecay", default: .float(0.01)),
                    ParameterSpec("beta1", default: .float(0.9)), ParameterSpec("beta2", default: .float(0.999))],
          doc: "AdamW settings for recipe(optim:).", example: "adamw(lr: 3e-3)") { c in
      .record(Record([("optim", .string("adamw")), ("lr", c[0]), ("weightDecay", c[1]), ("beta1", c[2]), ("beta2", c[3])]))
    }
    r.add("cosine", [ParameterSpec("warmup", default: .int(0)), ParameterSpec("minimum", default: .float(0))],
          doc: "Linear warm-up then cosine decay of the learning rate.", example: "cosine(warmup: 100)") { c in
      .record(Record([("schedule", .string("cosine")), ("warmup", c[0]), ("minimum", c[1])]))
    }
    r.add("stepdecay", [ParameterSpec("every"), ParameterSpec("gamma", default: .float(0.1))],
          doc: "The learning rate times gamma every `every` steps.", example: "stepdecay(1000, gamma: 0.5)") { c in
      .record(Record([("schedule", .string("step")), ("every", c[0]), ("gamma", c[1])]))
    }
    r.add("recipe", [ParameterSpec("epochs", default: .int(1)), ParameterSpec("batch", default: .int(32)),
                     ParameterSpec("optim", default: Value.none), ParameterSpec("schedule", default: Value.none),
                     ParameterSpec("seed", default: .int(0)), ParameterSpec("smoothing", default: .float(0)),
                     ParameterSpec("clip", default: Value.none), ParameterSpec("augment", default: Value.none),
                     ParameterSpec("ema", default: Value.none), ParameterSpec("lr", default: Value.none),
                     ParameterSpec("steps", default: Value.none), ParameterSpec("seq", default: .int(256)),
                     ParameterSpec("accumulate", default: .int(1)), ParameterSpec("zLoss", default: .float(0)),
                     ParameterSpec("checkpoint", default: .bool(false))],
          doc: "How to train: epochs, batch size, optimizer, schedule, seed, label smoothing, gradient clipping; lr: sets the optimizer's rate. For text: steps (optimizer steps), seq (tokens per window), accumulate (micro-batches per step), zLoss, checkpoint (recompute each layer in the backward pass).",
          example: "recipe(epochs: 3, batch: 64, optim: adamw(lr: 3e-3), schedule: cosine(warmup: 20), seed: 1)") { c in
      var optim = c[2]
      if case .none = optim { optim = .record(Record([("optim", .string("adamw")), ("lr", .float(1e-3)), ("weightDecay", .float(0.01)),
                                                       ("beta1", .float(0.9)), ("beta2", .float(0.999))])) }
      var schedule = c[3]
      if case .none = schedule { schedule = .record(Record([("schedule", .string("constant"))])) }
      let fields: [(name: String, value: Value)] = [("epochs", c[0]), ("batch", c[1]), ("optim", optim), ("schedule", schedule),
                                                    ("seed", c[4]), ("smoothing", c[5]), ("clip", c[6]), ("augment", c[7]),
                                                    ("ema", c[8]), ("lr", c[9]), ("steps", c[10]), ("seq", c[11]),
                                                    ("accumulate", c[12]), ("zLoss", c[13]), ("checkpoint", c[14])]
      _ = try parse(.record(Record(fields)))                 // check now, so a bad recipe fails where it is written
      return .record(Record(fields))
    }
    r.add("augment", [ParameterSpec("crop", default: .int(0)), ParameterSpec("flip", default: .bool(false)),
                      ParameterSpec("rrc", default: .bool(false)), ParameterSpec("mixup", default: .float(0)),
                      ParameterSpec("cutmix", default: .float(0)), ParameterSpec("seed", default: .int(0))],
          doc: "Replayable augmentation for recipe(augment:): random crop with padding, flip, random-resized crop, mixup or cutmix.",
          example: "augment(crop: 2, flip: true, seed: 1)") { c in
      .record(Record([("crop", c[0]), ("flip", c[1]), ("rrc", c[2]), ("mixup", c[3]), ("cutmix", c[4]), ("seed", c[5])]))
    }
    r.add("batch", [ParameterSpec("d"), ParameterSpec("index"), ParameterSpec("size", default: .int(32)),
                    ParameterSpec("augment", default: Value.none), ParameterSpec("epoch", default: .int(0))],
          doc: "Batch number `index` of a dataset in its order: {images, labels}; with augment: the augmented images of that epoch and their (soft) targets, as train sees them.",
          example: "batch(digits(), 0, size: 8).images.shape") { c in
      let d = try DataBuiltins.dataset(c, 0, "batch")
      let index = try c.int(1), size = try c.int(2), epoch = try c.int(4)
      guard size > 0 else { throw LatheError("batch: size must be positive, got \(size)") }
      let (start, overflow) = index.multipliedReportingOverflow(by: size)
      guard index >= 0, !overflow, start < d.count else {
        throw LatheError("batch: index \(index) is past the last batch (\((d.count + size - 1) / size) batches of \(size))")
      }
      let (images, labels) = try d.batch(start..<min(d.count, start + size))
      guard case .record(let a) = c[3] else {
        if c.isNone(3) { return .record(Record([("images", .host(TensorValue(images))), ("labels", .host(TensorValue(labels)))])) }
        throw LatheError("batch: augment must be an augment(...) record, got \(c[3].typeName)", kind: .type)
      }
      let aug = try augmentation(a, "batch")
      let (augmented, targets) = try aug.apply(images: images, labels: labels, samples: Array(start..<(start + images.shape[0])),
                                               epoch: epoch, classes: d.classCount)
      return .record(Record([("images", .host(TensorValue(augmented))), ("labels", .host(TensorValue(labels))),
                             ("targets", .host(TensorValue(targets)))]))
    }
    r.add("augparams", [ParameterSpec("augment"), ParameterSpec("sample"), ParameterSpec("epoch", default: .int(0)),
                        ParameterSpec("height", default: .int(28)), ParameterSpec("width", default: .int(28))],
          doc: "The random choices augment made for one sample in one epoch, replayed from its seed: {dy, dx, flipped, box}.",
          example: "augparams(augment(crop: 2, flip: true, seed: 1), 5, epoch: 2)") { c in
      guard case .record(let a) = c[0] else {
        throw LatheError("augparams: augment must be an augment(...) record, got \(c[0].typeName)", kind: .type)
      }
      let h = try c.int(3), w = try c.int(4), sample = try c.int(1)
      guard h > 0, w > 0, h <= 1 << 16, w <= 1 << 16, sample >= 0 else {
        throw LatheError("augparams: needs sample >= 0 and a size in 1...65536, got sample \(sample), \(h)x\(w)")
      }
      let p = try augmentation(a, "augparams").parameters(sample: sample, epoch: try c.int(2), height: h, width: w)
      let box: Value = p.box.map { .list([.int($0.y), .int($0.x), .int($0.h), .int($0.w)]) } ?? .none
      return .record(Record([("dy", .int(p.dy)), ("dx", .int(p.dx)), ("flipped", .bool(p.flipped)), ("box", box)]))
    }
    r.add("crossentropy", [ParameterSpec("logits"), ParameterSpec("labels"), ParameterSpec("smoothing", default: .float(0))],
          doc: "Mean cross-entropy of logits [N, C] against class ids [N] (or soft targets [N, C]).",
          example: "crossentropy(tensor([[2, 0]]), tensor([0]))") { c in
      let logits = try TensorBuiltins.variable(c[0], "crossentropy: logits"), labels = try TensorBuiltins.tensor(c[1], "crossentropy: labels")
      if labels.rank == 2 { return TensorBuiltins.wrap(try Loss.softCrossEntropy(logits, targets: labels)) }
      return TensorBuiltins.wrap(try Loss.crossEntropy(logits, labels: labels, smoothing: Float(try c.double(2))))
    }
    r.add("mse", [ParameterSpec("prediction"), ParameterSpec("target")], doc: "Mean squared error.",
          example: "mse(tensor([1, 2]), tensor([1, 4]))") { c in
      TensorBuiltins.wrap(try Loss.mse(try TensorBuiltins.variable(c[0], "mse: prediction"), try TensorBuiltins.tensor(c[1], "mse: target")))
    }
    r.add("kl", [ParameterSpec("student"), ParameterSpec("teacher"), ParameterSpec("temperature", default: .float(1))],
          doc: "KL(softmax(teacher/T) ‖ softmax(student/T))·T², averaged over the batch (distillation).",
          example: "kl(tensor([[1, 0]]), tensor([[0, 1]]), temperature: 2)") { c in
      TensorBuiltins.wrap(try Loss.kl(try TensorBuiltins.variable(c[0], "kl: student"), teacherLogits: try TensorBuiltins.tensor(c[1], "kl: teacher"),
                                      temperature: Float(try c.double(2))))
    }
    r.add("cosineloss", [ParameterSpec("a"), ParameterSpec("b")], doc: "1 − cosine similarity along the last axis, averaged.",
          example: "cosineloss(tensor([[1, 0]]), tensor([[0, 1]]))") { c in
      TensorBuiltins.wrap(try Loss.cosine(try TensorBuiltins.variable(c[0], "cosineloss: a"), try TensorBuiltins.variable(c[1], "cosineloss: b")))
    }
    r.add("train", [ParameterSpec("model"), ParameterSpec("data"), ParameterSpec("methods", variadic: true),
                    ParameterSpec("recipe", default: Value.none), ParameterSpec("heldOut", default: Value.none),
                    ParameterSpec("every", default: .int(0))],
          doc: "Trains a model in place on a dataset (or {images, labels}) with cross-entropy; returns the run record. Training methods (kd(...)) after the data change the loop, in order; the recipe comes last (positional or recipe:).",
          example: "train(mlp([64, 32, 10]), digits(), recipe(epochs: 2))") { c in
      // After the data: training methods, then at most one recipe (a record from recipe(...)).
      var recipeValue = c[3], methods: [TrainingMethod] = [], predictor: KVPredict? = nil, streamer: SpecStream? = nil, heads: Medusa? = nil
      if case .list(let items) = c[2] {
        for v in items {
          switch v {
          case .record:
            guard case .none = recipeValue else { throw LatheError("train: two recipes given; give one") }
            recipeValue = v
          case .host(let t as TechniqueValue) where t.technique is SpecStream:
            guard streamer == nil else { throw LatheError("train: two specstream values given; give one") }
            streamer = t.technique as? SpecStream
          case .host(let t as TechniqueValue) where t.technique is Medusa:
            guard heads == nil else { throw LatheError("train: two medusa values given; give one") }
            heads = t.technique as? Medusa
          case .host(let t as TechniqueValue) where t.technique is KVPredict:
            guard predictor == nil else { throw LatheError("train: two kvpredict values given; give one") }
            predictor = t.technique as? KVPredict
          case .host(let t as TechniqueValue):
            guard let m = t.technique as? any TrainingTechnique else {
              throw LatheError("train: \(t.technique.name) is a \(TechniqueBuiltins.roleNames(t.technique.roles)); train takes a training method", kind: .type)
            }
            methods.append(m)
          default:
            throw LatheError("train: after the data come training methods and a recipe, got \(v.typeName)", kind: .type)
          }
        }
      }
      let recipe: Recipe
      if case .none = recipeValue { recipe = Recipe() } else { recipe = try parse(recipeValue) }
      if let predictor {
        guard case .string(let text) = c[1] else { throw LatheError("train: kvpredict trains on text, got \(c[1].typeName)", kind: .type) }
        guard methods.isEmpty else { throw LatheError("train: kvpredict trains alone; drop the other training methods") }
        return try TrainingBuiltins.trainKVPredictor(c, predictor, text: text, recipe: recipe, recipeValue: recipeValue)
      }
      if let heads {
        guard methods.isEmpty, predictor == nil, streamer == nil else { throw LatheError("train: medusa trains alone; drop the other training methods") }
        return try TrainingBuiltins.trainMedusa(c, heads, recipe: recipe, recipeValue: recipeValue)
      }
      if let streamer {
        guard methods.isEmpty, predictor == nil else { throw LatheError("train: specstream trains alone; drop the other training methods") }
        return try TrainingBuiltins.trainSpecStream(c, streamer, recipe: recipe, recipeValue: recipeValue)
      }
      // Text trains a language model (next-token cross-entropy on windows of it).
      if case .string(let text) = c[1] {
        return try TrainingBuiltins.trainLanguageModel(c, text: text, methods: methods, recipe: recipe, recipeValue: recipeValue)
      }
      guard c.isNone(4) else { throw LatheError("train: heldOut: is held-out text for a language model; this data is not text") }
      let model = try module(c[0], "train")
      let (images, labels) = try data(c[1], "train")
      let bar = Progress(c.interpreter, total: (images.shape[0] + recipe.batch - 1) / recipe.batch * recipe.epochs, label: "train")
      var metrics: [(key: String, step: Int, value: Double)] = []
      if case .host(let value as ModuleValue) = c[0] {
        value.trainedWith += methods.compactMap { $0 as? any TrainingTechnique }
      }
      let record = try Trainer.train(model, images: images, labels: labels, recipe: recipe, methods: methods) { step, _, loss in
        metrics.append(("loss", step, Double(loss)))
        try bar.advance()
      }
      bar.finish()
      c.interpreter.pendingMetrics += metrics
      c.interpreter.pendingParams += [("recipe", recipeValue.repr)] + methods.compactMap { ($0 as? any Technique).map { ("method", $0.description) } }
      return .record(Record([("loss", .list(record.losses.map { .float(Double($0)) })), ("steps", .int(record.steps)),
                             ("seconds", .float(record.seconds)),
                             ("examplesPerSecond", .float(record.examplesPerSecond)),
                             ("finalLoss", .float(Double(record.losses.last ?? .nan)))]))
    }
    r.add("evaluate", [ParameterSpec("model"), ParameterSpec("data")],
          doc: "Accuracy and mean cross-entropy of a model on a dataset (or {images, labels}).",
          example: "evaluate(mlp([64, 10]), digits())") { c in
      let (images, labels) = try data(c[1], "evaluate")
      let (accuracy, loss) = try Trainer.evaluate(try module(c[0], "evaluate"), images: images, labels: labels)
      return .record(Record([("accuracy", .float(accuracy)), ("loss", .float(loss)), ("count", .int(images.shape[0]))]))
    }
  }

  /// Images and labels of a dataset value or an {images:, labels:} record.
  static func data(_ v: Value, _ op: String) throws -> (Tensor, Tensor) {
    var images: Value? = nil, labels: Value? = nil
    switch v {
    case .record(let r): images = r["images"]; labels = r["labels"]
    case .host(let h): images = try h.member("images"); labels = try h.member("labels")
    default: break
    }
    guard let images, let labels else {
      throw LatheError("\(op): data must be a dataset or a record {images:, labels:}, got \(v.typeName)", kind: .type)
    }
    return (try TensorBuiltins.tensor(images, "\(op): images"), try TensorBuiltins.tensor(labels, "\(op): labels"))
  }

  static func number(_ r: Record, _ key: String, _ fallback: Double) throws -> Double {
    guard let v = r[key] else { return fallback }
    if case .none = v { return fallback }
    guard let d = v.asDouble else { throw LatheError("recipe: \(key) must be a number, got \(v.typeName)", kind: .type) }
    return d
  }

  /// A Recipe from the record `recipe(...)` made.
  /// The Augmentation an `augment(...)` record describes.
  static func augmentation(_ a: Record, _ op: String) throws -> Augmentation {
    var aug = Augmentation()
    aug.cropPadding = Int(try number(a, "crop", 0))
    if case .bool(let f)? = a["flip"] { aug.flip = f }
    aug.mixupAlpha = try number(a, "mixup", 0)
    aug.cutmixAlpha = try number(a, "cutmix", 0)
    aug.seed = UInt64(bitPattern: Int64(try number(a, "seed", 0)))
    if case .bool(true)? = a["rrc"] { aug.resizedCrop = (0.35...1.0, (3.0 / 4.0)...(4.0 / 3.0)) }
    guard aug.cropPadding >= 0, aug.cropPadding <= 64, aug.mixupAlpha >= 0, aug.cutmixAlpha >= 0, !(aug.mixupAlpha > 0 && aug.cutmixAlpha > 0) else {
      throw LatheError("\(op): augment needs crop in 0...64, alphas >= 0, and mixup or cutmix, not both")
    }
    return aug
  }

  static func parse(_ v: Value) throws -> Recipe {
    guard case .record(let r) = v else { throw LatheError("train: recipe must be made by recipe(...), got \(v.typeName)", kind: .type) }
    var recipe = Recipe()
    recipe.epochs = Int(try number(r, "epochs", 1))
    recipe.batch = Int(try number(r, "batch", 32))
    guard recipe.epochs > 0, recipe.epochs <= 100_000, recipe.batch > 0, recipe.batch <= 1 << 20 else {
      throw LatheError("recipe: epochs and batch must be positive (got \(recipe.epochs) and \(recipe.batch))")
    }
    recipe.seed = UInt64(bitPattern: Int64(try number(r, "seed", 0)))
    recipe.labelSmoothing = Float(try number(r, "smoothing", 0))
    guard (0..<1).contains(recipe.labelSmoothing) else { throw LatheError("recipe: smoothing must be in [0, 1)") }
    if let clip = r["clip"], clip.asDouble != nil { recipe.clipNorm = Float(try number(r, "clip", 0)) }
    if let ema = r["ema"], ema.asDouble != nil {
      let d = try number(r, "ema", 0)
      guard d > 0 && d < 1 else { throw LatheError("recipe: ema must be a decay in (0, 1), got \(d)") }
      recipe.emaDecay = Float(d)
    }
    if case .record(let a)? = r["augment"] { recipe.augmentation = try augmentation(a, "recipe") }
    if case .record(let o)? = r["optim"] {
      recipe.lr = Float(try number(o, "lr", 1e-3))
      guard recipe.lr > 0, recipe.lr.isFinite else { throw LatheError("recipe: lr must be a positive number") }
      switch o["optim"]?.description ?? "adamw" {
      case "sgd":
        let m = Float(try number(o, "momentum", 0)), wd = Float(try number(o, "weightDecay", 0))
        var nesterov = false
        if case .bool(let b)? = o["nesterov"] { nesterov = b }
        recipe.makeOptimizer = { SGD(momentum: m, nesterov: nesterov, weightDecay: wd) }
        recipe.optimizerName = "sgd"
      case "adamw":
        let wd = Float(try number(o, "weightDecay", 0.01)), b1 = Float(try number(o, "beta1", 0.9)), b2 = Float(try number(o, "beta2", 0.999))
        recipe.makeOptimizer = { AdamW(beta1: b1, beta2: b2, weightDecay: wd) }
      case let other: throw LatheError("recipe: unknown optimizer \(other); use sgd(...) or adamw(...)")
      }
    }
    if let lr = r["lr"], lr.asDouble != nil {
      recipe.lr = Float(try number(r, "lr", 1e-3))
      guard recipe.lr > 0, recipe.lr.isFinite else { throw LatheError("recipe: lr must be a positive number") }
    }
    if let steps = r["steps"], steps.asDouble != nil {
      let n = try number(r, "steps", 1)
      guard n >= 1, n <= 10_000_000, n == n.rounded() else { throw LatheError("recipe: steps must be a whole number in 1...10000000, got \(n)") }
      recipe.steps = Int(n)
    }
    let seq = try number(r, "seq", 256), accumulate = try number(r, "accumulate", 1), z = try number(r, "zLoss", 0)
    guard seq >= 1, seq <= 1_048_576, accumulate >= 1, accumulate <= 65_536, z >= 0, z.isFinite else {
      throw LatheError("recipe: seq and accumulate must be positive and zLoss at least 0 (got \(seq), \(accumulate), \(z))")
    }
    recipe.sequence = Int(seq); recipe.accumulate = Int(accumulate); recipe.zLoss = Float(z)
    if case .bool(let b)? = r["checkpoint"] { recipe.checkpoint = b }
    if case .record(let s)? = r["schedule"] {
      switch s["schedule"]?.description ?? "constant" {
      case "constant": recipe.schedule = .constant
      case "cosine": recipe.schedule = .cosine(warmup: Int(try number(s, "warmup", 0)), minimum: Float(try number(s, "minimum", 0)))
      case "step": recipe.schedule = .step(every: Int(try number(s, "every", 1000)), gamma: Float(try number(s, "gamma", 0.1)))
      case let other: throw LatheError("recipe: unknown schedule \(other)")
      }
    }
    return recipe
  }
}
