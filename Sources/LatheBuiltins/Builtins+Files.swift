// Builtin rows for tensor files and model state: savetensors, loadtensors, state, loadstate (safetensors format).

import Foundation
import LatheLang
import LatheModels
import LatheNN
import LatheTensor

extension ModuleValue {
  /// `save("m", model)` stores the model's parameters as a safetensors blob with its architecture in the metadata;
  /// `load("m")` builds the model again (or, for an architecture the format does not describe, gives the state
  /// record, which `loadstate(model, ...)` puts into a model of the same architecture).
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    var metadata = ["format": "lathe", "summary": module.summary]
    if let architecture = Architecture.json(module) { metadata["architecture"] = architecture }
    return ("model-state", try Safetensors.write(module.namedParameters.map { ($0.name, $0.variable.value) }, metadata: metadata))
  }
}

enum FileBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.addHostDecoder(kind: "model-state") { bytes in
      let (tensors, metadata) = try Safetensors.read(bytes: bytes, path: "saved model")
      guard let architecture = metadata["architecture"] else { return record(tensors) }
      let module = try Architecture.build(json: architecture)
      try module.load(state: tensors)
      return .host(ModuleValue(module))
    }
    r.add("tempfile", [ParameterSpec("name")],
          doc: "A path for a file named name in this process's own temporary folder (mode 0700, made on first use, "
            + "removed when the process ends): for files a script writes and reads back.",
          example: "savetensors(tempfile(\"w.safetensors\"), {w: eye(2)})") { c in
      let name = try c.string(0)
      guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
        throw LatheError("tempfile: name must be a file name without '/', got \(Value.quote(name))")
      }
      return .string(try TemporaryFolder.path() + "/" + name)
    }
    r.add("savetensors", [ParameterSpec("path"), ParameterSpec("tensors")],
          doc: "Writes a record of tensors (or a model's state) to a safetensors file.",
          example: "savetensors(tempfile(\"w.safetensors\"), {w: eye(2)})") { c in
      let path = try c.string(0)
      let entries = try tensors(c[1], "savetensors")
      // Through a temporary file and a rename: a failed write leaves an old file at the path intact.
      do { try Safetensors.write(entries, to: path) }        // streamed, through a temporary file and a rename
      catch let e as SafetensorsError { throw e } catch { throw LatheError("savetensors: cannot write \(path): \(error)") }
      c.interpreter.pendingInputs.append((role: "output", path: path))
      return .none
    }
    r.add("loadtensors", [ParameterSpec("path")], doc: "The tensors of a safetensors file, as a record by name.",
          example: "loadtensors(tempfile(\"w.safetensors\"))") { c in
      let path = try c.string(0)
      if let format = FileFormat.identify(path: path), format != "safetensors" {
        throw LatheError("loadtensors: \(path) is a \(format) file, not safetensors; \(FileFormat.reader(of: format))")
      }
      c.interpreter.pendingInputs.append((role: "tensors", path: path))
      return record(try Safetensors.read(path: path).tensors)
    }
    r.add("state", [ParameterSpec("model")],
          doc: "A model's weights as a record by name: an nn model's parameters (\"1.weight\" ...), a language model's "
            + "tensors by GGUF name in their stored dtype (compressed matrices dequantised).",
          example: "keys(state(mlp([4, 2])))") { c in
      if case .host(let h as LanguageModelValue) = c[0] {
        return .record(Record(try h.model.namedWeights.map { ($0.name, .host(TensorValue(try LanguageModelValue.stored($0.weight)))) }))
      }
      return record(try NNBuiltins.module(c[0], "state").namedParameters.map { ($0.name, $0.variable.value) })
    }
    r.add("loadstate", [ParameterSpec("model"), ParameterSpec("state")],
          doc: "Copies a state record (from state, load or loadtensors) into a model of the same architecture.",
          example: "loadstate(mlp([4, 2]), state(mlp([4, 2], seed: 1)))") { c in
      try NNBuiltins.module(c[0], "loadstate").load(state: try tensors(c[1], "loadstate"))
      return .none
    }
  }

  static func record(_ tensors: [(name: String, tensor: Tensor)]) -> Value {
    .record(Record(tensors.map { ($0.name, .host(TensorValue($0.tensor))) }))
  }

  /// Named tensors from a record of tensors or a model.
  static func tensors(_ v: Value, _ op: String) throws -> [(name: String, tensor: Tensor)] {
    switch v {
    case .record(let r): return try r.fields.map { ($0.name, try TensorBuiltins.tensor($0.value, "\(op): \($0.name)")) }
    case .host(let h as ModuleValue): return h.module.namedParameters.map { ($0.name, $0.variable.value) }
    default: throw LatheError("\(op): needs a record of tensors or a model, got \(v.typeName)", kind: .type)
    }
  }
}

/// The process's private temporary folder: made with mkdtemp on first use, removed (with what is in it) at exit.
enum TemporaryFolder {
  nonisolated(unsafe) private static var made: String?
  private static let lock = NSLock()

  static func path() throws -> String {
    lock.lock(); defer { lock.unlock() }
    if let made { return made }
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((base + "/lathe-\(getpid())-XXXXXX").utf8CString)
    guard let result = mkdtemp(&template) else {
      throw LatheError("tempfile: cannot make a temporary folder in \(base) (\(String(cString: strerror(errno))))")
    }
    let path = String(cString: result)
    made = path
    atexit { TemporaryFolder.remove() }
    return path
  }

  static func remove() {
    guard let made else { return }
    try? FileManager.default.removeItem(atPath: made)
  }
}
