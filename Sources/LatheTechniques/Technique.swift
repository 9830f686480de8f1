// Techniques as a table. Every technique is one `TechniqueEntry` in `Techniques.all`: its name, the roles it plays,
// its parameters (label, default, doc), a constructor that reads its arguments by label, and the decoder of its
// saved form. The language's builtin rows, `?name` help, completion, notebook save/load and `Techniques.parse` are
// all made from the table; the verbs (`compress`, `prefill`, `generate`, `decode`, `train`) accept a value by the
// role protocols below, never by its name.
//
// Adding a technique: a folder `Sources/LatheTechniques/<Name>/` with a type conforming to one or more role
// protocols and a `static let entry`, and one line in `Techniques.all`.

import Foundation
import LatheModels
import LatheNN
import LatheParallel
import LatheTensor

/// What a technique value can be given to. A technique plays one or more roles; the list grows as architectures
/// and dataset transforms arrive.
public enum Role: String, CaseIterable, Sendable, CustomStringConvertible {
  /// Matrix to packed matrix: `compress(m, t)` (`MatrixCompressor`).
  case compressor
  /// Model (and optional data) to model: `compress(m, t)`, `compress(m, data, t)` (`ModelTransform`).
  case modelTransform
  /// Fills the KV cache for a prompt: `prefill(m, p, t)`, `generate(m, p, t)` (`PrefillStrategy`).
  case prefillStrategy
  /// Chooses the tokens after a prefill: `generate(m, p, t)`, `decode(m, kv, t)` (`DecodingStrategy`).
  case decodingStrategy
  /// Changes how `train(m, data, t…, recipe)` trains (`TrainingMethod`).
  case trainingMethod
  /// Learns its own small parts in closed form (ridge maps, predictors, rotations) without training the model:
  /// `fit(m, data, t)` returns a new, fitted value (`FittingTechnique`).
  case fittedAnalyser

  /// The words the language's errors and docs use: "model transform".
  public var description: String {
    switch self {
    case .compressor: return "compressor"
    case .modelTransform: return "model transform"
    case .prefillStrategy: return "prefill strategy"
    case .decodingStrategy: return "decoding strategy"
    case .trainingMethod: return "training method"
    case .fittedAnalyser: return "fitted analyser"
    }
  }

  /// The verbs that take a value of this role.
  public var verbs: [String] {
    switch self {
    case .compressor: return ["compress"]
    case .modelTransform: return ["compress"]
    case .prefillStrategy: return ["prefill", "generate"]
    case .decodingStrategy: return ["generate", "decode"]
    case .trainingMethod: return ["train"]
    case .fittedAnalyser: return ["fit"]
    }
  }
}

/// A technique value: what a constructor such as `rtn(bits: 4)` returns. It prints as the constructor call with
/// every parameter spelled out, so that `Techniques.parse(t.description)` gives it back.
public protocol Technique: CustomStringConvertible {
  /// The table entry this value belongs to (its name, roles and parameters).
  var entry: TechniqueEntry { get }
  /// The bytes `entry.decode` reads back; nil when the value holds something a notebook keeps by itself (a model).
  func saved() throws -> [UInt8]?
  /// Read-only fields the language shows as `t.name` (beside `t.role`); models appear as `.object`.
  var fields: [(String, TechniqueArgument)] { get }
}

extension Technique {
  public var name: String { entry.name }
  public var roles: [Role] { entry.roles }
  /// By default the saved form is the description, which the entry's parser reads back.
  public func saved() throws -> [UInt8]? { Array(description.utf8) }
  public var fields: [(String, TechniqueArgument)] { [] }
}

// MARK: the roles

/// Compressor: turns one dense weight matrix into a CompressedMatrix that the model runs in its packed form.
public protocol MatrixCompressor: Technique {
  /// Bits per weight the packed form takes (exact: everything stored, scales and seeds included).
  var bitsPerWeight: Double { get }
  /// Compresses a dense matrix [rows, cols] (any dtype; read as f32). `progress(done, total)` is called as work
  /// completes and may throw to stop (Ctrl-C).
  func compress(_ matrix: Tensor, progress: (Int, Int) throws -> Void) throws -> any CompressedMatrix
  /// The matrix of shape [rows, cols] whose packed bytes are `bytes` (what `packed()` returned); throws when the
  /// byte count does not fit the shape.
  func unpack(_ bytes: [UInt8], shape: [Int]) throws -> any CompressedMatrix
}

/// Model transform: a new model from a model, optionally using data (calibration text). The input model is left as
/// it was.
public protocol ModelTransform: Technique {
  /// Whether `compress(m, data, t)` must be given data.
  var needsData: Bool { get }
  func transform(_ model: LlamaModel, data: String?) throws -> LlamaModel
}

extension ModelTransform {
  public var needsData: Bool { false }
}

/// What a prefill strategy hands back: a real KV cache (with the parallel run's counters) or a run played out on
/// a cost model, which has timings and counters but no cache.
public enum PrefillOutcome {
  /// The KV cache a serial prefill would give, with the run's chunks, timelines and bytes sent.
  case real(ParallelPrefill)
  case simulated(SimulatedPrefill, costs: RunaheadCosts)
  /// A cache predicted by another model (KV prediction), with its timings and counters.
  case predicted(PredictedPrefill)
}

/// Prefill strategy: fills a model's KV cache for a prompt.
public protocol PrefillStrategy: Technique {
  /// Whether it plays the prefill out on a cost model instead of running it (the prompt may then be a length).
  var simulates: Bool { get }
  /// The smallest prompt it can split.
  var minimumPromptTokens: Int { get }
  /// Prefills `prompt` (token ids) with `room` free positions after it; `interrupt` is polled (Ctrl-C).
  func prefill(_ model: LlamaModel, _ prompt: [Int], room: Int, interrupt: @escaping () throws -> Void) throws -> PrefillOutcome
}

extension PrefillStrategy {
  public var simulates: Bool { false }
  public var minimumPromptTokens: Int { 1 }
}

/// Decoding strategy: the tokens after a prefill.
public protocol DecodingStrategy: Technique {
  /// Continues `context` (every token so far; the model's `cache` holds all but the last `pending` ones, and
  /// `logits` are the logits after the cached ones when nothing is pending) for at most `maxTokens` tokens.
  func decode(_ model: LlamaModel, context: [Int], cache: KVCache, logits: [Float]?, maxTokens: Int, sampler: inout Sampler,
              stop: [String], onToken: (Int, String) throws -> Void) throws -> DecodingResult
  /// The serial prefill of a prompt this strategy will decode after (no prefill strategy given): the model's own,
  /// unless the strategy has work to do in that call (Speculative Streaming's streams at the prompt's last position,
  /// Medusa's heads on its last hidden state: the first tree's drafts, kept for the decode of that cache).
  func serialPrefill(_ model: LlamaModel, _ prompt: [Int], extra: Int) throws -> (cache: KVCache, logits: [Float])
}

extension DecodingStrategy {
  public func serialPrefill(_ model: LlamaModel, _ prompt: [Int], extra: Int) throws -> (cache: KVCache, logits: [Float]) {
    try model.prefill(prompt, extra: extra)
  }
}

/// What a decoding strategy's serial prefill keeps for the decode after it: rows of hidden states, for that cache
/// (held weakly) while it holds `count` positions.
public struct PrefillRows {
  public weak var cache: KVCache?
  public let count: Int
  public let hidden: [Float]
  public init(cache: KVCache, count: Int, hidden: [Float]) { self.cache = cache; self.count = count; self.hidden = hidden }
  /// The rows if they belong to `cache` as it is now.
  public func rows(for cache: KVCache) -> [Float]? { self.cache === cache && cache.count == count ? hidden : nil }
}

/// A decoding strategy's result: the generation and what it cost, as language fields.
public struct DecodingResult {
  public var generation: Generation
  /// Counters of the strategy (`baseCalls`, `acceptance`, `tokensPerBaseCall`, …), in order.
  public var counters: [(String, TechniqueArgument)]
  public init(generation: Generation, counters: [(String, TechniqueArgument)]) { self.generation = generation; self.counters = counters }
}

/// Training method: a technique that `train(m, data, t…, recipe)` hands its hooks (LatheNN's TrainingMethod).
public protocol TrainingTechnique: Technique, TrainingMethod {}

/// A training method whose trained model has a deployable form (hard look-up tables, packed bits, fixed masks):
/// `compress(m)` finds the methods `m` was trained with and asks each that has one to make it.
public protocol FinalizingTechnique: TrainingTechnique {
  func finalize(_ model: Module) throws -> Module
}

/// Fitted analyser: `fit(model, data, t)` learns the technique's own parts in closed form and returns a new, fitted
/// value; the model is never changed. Either slot may be absent (`fit(images, t)`): a slot that does not apply is
/// left out, so `model` is `.none` then.
public protocol FittingTechnique: Technique {
  func fit(model: TechniqueArgument, data: TechniqueArgument) throws -> any Technique
}

// MARK: arguments

/// An argument of a technique constructor, as the table reads it: the language's plain values, and engine objects
/// (a model, a partition table, another technique) as `.object`.
public enum TechniqueArgument: @unchecked Sendable, CustomStringConvertible {
  case none, bool(Bool), int(Int), float(Double), string(String), list([TechniqueArgument])
  case object(Any)

  /// As the language writes it: `4`, `0.5`, `"range"`, `[0.6, 0.4]`, `none`.
  public var description: String {
    switch self {
    case .none: return "none"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return "\(i)"
    case .float(let x): return TechniqueArgument.number(x)
    case .string(let s): return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    case .list(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
    case .object(let o): return (o as? CustomStringConvertible)?.description ?? "\(type(of: o))"
    }
  }

  /// How the language prints a float: 0.5, 1e+10, 2.0.
  public static func number(_ x: Double) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x < 0 ? "-inf" : "inf" }
    return x.description
  }

  /// The type as the language names it in errors.
  public var typeName: String {
    switch self {
    case .none: return "none"
    case .bool: return "bool"
    case .int: return "int"
    case .float: return "float"
    case .string: return "string"
    case .list: return "list"
    case .object(let o as ForeignValue): return o.typeName
    case .object(let o): return o is any Technique ? "technique" : o is LlamaModel ? "language model" : "\(type(of: o))"
    }
  }
}

/// A value of the language that no technique reads (a tensor, a record): it travels only so that an error can name
/// its type.
public struct ForeignValue: Sendable {
  public let typeName: String
  public init(typeName: String) { self.typeName = typeName }
}

/// One parameter of a technique constructor: its label, its default (nil: required) and what it means.
public struct TechniqueParameter: @unchecked Sendable {
  public let label: String
  public let defaultValue: TechniqueArgument?
  public let doc: String
  /// A parameter with a default (`TechniqueArgument.none` for "off").
  public init(_ label: String, _ defaultValue: TechniqueArgument, _ doc: String) {
    self.label = label; self.defaultValue = defaultValue; self.doc = doc
  }
  /// A parameter the call must give.
  public init(required label: String, _ doc: String) {
    self.label = label; self.defaultValue = nil; self.doc = doc
  }
}

/// A technique's errors: the technique's name, then what is wrong.
public struct TechniqueError: Error, CustomStringConvertible, Equatable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// The arguments of one constructor call, by label, every parameter present (defaults filled in).
public struct TechniqueArguments {
  public let technique: String
  public private(set) var values: [String: TechniqueArgument]

  public init(technique: String, values: [String: TechniqueArgument]) { self.technique = technique; self.values = values }

  public subscript(_ label: String) -> TechniqueArgument { values[label] ?? .none }

  public func isNone(_ label: String) -> Bool { if case .none = self[label] { return true } else { return false } }

  func fail(_ label: String, _ wanted: String) -> TechniqueError {
    TechniqueError("\(technique): '\(label)' must be \(wanted), got \(self[label].typeName)")
  }

  public func int(_ label: String) throws -> Int {
    switch self[label] {
    case .int(let i): return i
    case .float(let x) where x == x.rounded() && Swift.abs(x) < 1e15: return Int(x)
    default: throw fail(label, "an int")
    }
  }
  public func optionalInt(_ label: String) throws -> Int? { isNone(label) ? nil : try int(label) }
  public func double(_ label: String) throws -> Double {
    switch self[label] {
    case .int(let i): return Double(i)
    case .float(let x): return x
    default: throw fail(label, "a number")
    }
  }
  public func optionalDouble(_ label: String) throws -> Double? { isNone(label) ? nil : try double(label) }
  public func bool(_ label: String) throws -> Bool {
    guard case .bool(let b) = self[label] else { throw fail(label, "true or false") }
    return b
  }
  public func string(_ label: String) throws -> String {
    guard case .string(let s) = self[label] else { throw fail(label, "a string") }
    return s
  }
  public func optionalString(_ label: String) throws -> String? { isNone(label) ? nil : try string(label) }
  /// The engine object at `label`, of type T (`what` names it in the error).
  public func object<T>(_ label: String, _ type: T.Type, _ what: String) throws -> T {
    guard case .object(let o) = self[label], let t = o as? T else { throw fail(label, what) }
    return t
  }
  public func optionalObject<T>(_ label: String, _ type: T.Type, _ what: String) throws -> T? {
    isNone(label) ? nil : try object(label, type, what)
  }
}

// MARK: the table

/// One technique: what the language's row, help, completion and saved form are made from.
public struct TechniqueEntry: @unchecked Sendable {
  public let name: String
  public let roles: [Role]
  public let parameters: [TechniqueParameter]
  public let doc: String
  public let example: String
  /// The constructor: every parameter is present in the arguments, defaults filled in.
  public let make: (TechniqueArguments) throws -> any Technique
  /// The value from its saved form (what `saved()` returned).
  public let decode: ([UInt8]) throws -> any Technique

  public init(name: String, roles: [Role], parameters: [TechniqueParameter], doc: String, example: String,
              make: @escaping (TechniqueArguments) throws -> any Technique,
              decode: (([UInt8]) throws -> any Technique)? = nil) {
    self.name = name; self.roles = roles; self.parameters = parameters; self.doc = doc; self.example = example
    self.make = make
    self.decode = decode ?? { bytes in try Techniques.parse(String(decoding: bytes, as: UTF8.self)) }
  }

  /// Calls the constructor with `given` by label; missing parameters take their defaults.
  public func make(_ given: [String: TechniqueArgument]) throws -> any Technique {
    var values: [String: TechniqueArgument] = [:]
    for (label, _) in given where !parameters.contains(where: { $0.label == label }) {
      throw TechniqueError("\(name): no parameter '\(label)' (it takes \(parameters.map(\.label).joined(separator: ", ")))")
    }
    for p in parameters {
      if let v = given[p.label] { values[p.label] = v } else if let d = p.defaultValue { values[p.label] = d } else {
        throw TechniqueError("\(name): missing argument '\(p.label)'")
      }
    }
    return try make(TechniqueArguments(technique: name, values: values))
  }
}

public enum Techniques {
  /// Every technique, one line each.
  public static let all: [TechniqueEntry] = [
    SeedLM.entry,
    RTN.entry,
    KMeans.entry,
    KVRunahead.runaheadEntry,
    KVRunahead.tspEntry,
    MPIPrefill.entry,
    DropLayers.entry,
    Speculative.entry,
    KnowledgeDistillation.entry,
    LoRA.entry,
    KVPredict.entry,
    SpecStream.entry,
    Medusa.entry,
    Greedy.entry,
  ]

  public static func entry(named name: String) -> TechniqueEntry? { all.first { $0.name == name } }

  /// The technique a description names, as `description` prints it (`rtn(bits: 4, group: 64, symmetric: false)`),
  /// read by label through the table; missing arguments take their defaults.
  public static func parse(_ text: String) throws -> any Technique {
    func fail(_ why: String = "") -> TechniqueError {
      TechniqueError("technique: '\(text)' is not a technique description" + (why.isEmpty ? "" : " (\(why))"))
    }
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard let open = trimmed.firstIndex(of: "("), trimmed.hasSuffix(")") else { throw fail() }
    let name = String(trimmed[..<open])
    guard let entry = entry(named: name) else {
      throw TechniqueError("technique: unknown technique '\(name)' (\(all.map(\.name).joined(separator: ", ")))")
    }
    var given: [String: TechniqueArgument] = [:]
    let body = trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)]
    for part in try DescriptionParser.split(body) where !part.isEmpty {
      guard let colon = part.firstIndex(of: ":") else { throw fail("'\(part)' has no label") }
      let label = part[..<colon].trimmingCharacters(in: .whitespaces)
      guard let value = DescriptionParser.value(part[part.index(after: colon)...].trimmingCharacters(in: .whitespaces)) else {
        throw fail("cannot read the value of '\(label)'")
      }
      given[label] = value
    }
    return try entry.make(given)
  }

  /// A technique from its saved form: `name`, a zero byte, then the entry's own bytes; or, as notebooks written
  /// before the table stored it, a bare description.
  public static func decode(_ bytes: [UInt8]) throws -> any Technique {
    guard let zero = bytes.firstIndex(of: 0) else { return try parse(String(decoding: bytes, as: UTF8.self)) }
    let name = String(decoding: bytes[..<zero], as: UTF8.self)
    guard let entry = entry(named: name) else { throw TechniqueError("technique: no technique named '\(name)' to load") }
    return try entry.decode(Array(bytes[(zero + 1)...]))
  }

  /// The saved form `decode` reads, or nil when the value cannot be saved on its own.
  public static func encode(_ t: any Technique) throws -> [UInt8]? {
    try t.saved().map { Array(t.name.utf8) + [0] + $0 }
  }

  /// The compressed-matrix decoders of every compressor in the table, for loading packed GGUF files.
  public static let formats = CompressedFormats { description, shape, bytes in
    guard let compressor = try parse(description) as? any MatrixCompressor else {
      throw TechniqueError("technique: '\(description)' is not a compressor")
    }
    return try compressor.unpack(bytes, shape: shape)
  }

  /// The entries that play `role`.
  public static func entries(playing role: Role) -> [TechniqueEntry] { all.filter { $0.roles.contains(role) } }
}

/// Reads the argument list of a description: top-level commas split it, and each value is a number, a bool,
/// none, a quoted string or a list of those.
enum DescriptionParser {
  static func split(_ body: Substring) throws -> [String] {
    var parts: [String] = [], current = "", depth = 0, quoted = false, escaped = false
    for ch in body {
      if quoted {
        current.append(ch)
        if escaped { escaped = false } else if ch == "\\" { escaped = true } else if ch == "\"" { quoted = false }
        continue
      }
      switch ch {
      case "\"": quoted = true; current.append(ch)
      case "[", "(": depth += 1; current.append(ch)
      case "]", ")": depth -= 1; current.append(ch)
      case "," where depth == 0: parts.append(current.trimmingCharacters(in: .whitespaces)); current = ""
      default: current.append(ch)
      }
    }
    guard !quoted, depth == 0 else { throw TechniqueError("technique: unbalanced brackets or quotes in '\(body)'") }
    let last = current.trimmingCharacters(in: .whitespaces)
    if !last.isEmpty { parts.append(last) }
    return parts
  }

  /// The value `text` writes, lists nested at most 16 deep (a saved form is data from a file).
  static func value(_ text: String, depth: Int = 0) -> TechniqueArgument? {
    guard depth <= 16 else { return nil }
    if text == "none" { return TechniqueArgument.none }
    if text == "true" { return .bool(true) }
    if text == "false" { return .bool(false) }
    if let i = Int(text) { return .int(i) }
    if let x = Double(text) { return .float(x) }
    if text.count >= 2, text.hasPrefix("\""), text.hasSuffix("\"") {
      var out = "", escaped = false
      for ch in text.dropFirst().dropLast() {
        if escaped { out.append(ch); escaped = false } else if ch == "\\" { escaped = true } else { out.append(ch) }
      }
      return .string(out)
    }
    if text.hasPrefix("["), text.hasSuffix("]") {
      guard let parts = try? split(text.dropFirst().dropLast()) else { return nil }
      var items: [TechniqueArgument] = []
      for p in parts { guard let v = value(p, depth: depth + 1) else { return nil }; items.append(v) }
      return .list(items)
    }
    return nil
  }
}
