// The codec target: the bytes of a saved value (`save`/`load` artifacts, and the host values inside them: tensors,
// model states, techniques) decoded with the registry a session has. A value that decodes must encode again, and
// that encoding must be a fixed point: decoding and encoding it gives the same bytes.

import Foundation
import LatheBuiltins
import LatheLang

enum CodecFuzz {
  nonisolated(unsafe) static var registry: BuiltinRegistry?

  static func session() -> BuiltinRegistry {
    if let registry { return registry }
    let r = Builtins.standard()
    registry = r
    return r
  }

  /// Values of every tag: scalars, strings, nested lists and records, ranges, tensors of several dtypes, a model's
  /// state and a technique.
  static func seeds() throws -> [(String, [UInt8])] {
    let interp = Interpreter(registry: session(), seed: 1)
    interp.output = { _, _ in }
    defer { interp.shutdown() }
    let sources = [
      "[1, -2.5, \"é\", none, true, [[]], {a: 1, b: [2, 3]}, 0..<10]",
      "{w: eye(3), h: astype(ones([2, 2]), \"f16\"), i: arange(6), m: zeros([2]) > 0}",
      "state(mlp([4, 3, 2]))",
      "seedlm(bits: 4)",
    ]
    var out: [(String, [UInt8])] = []
    for (i, source) in sources.enumerated() {
      guard let value = try? interp.run(source, name: "seed"), let bytes = try? ValueCodec.encode(value) else { continue }
      out.append(("seed-\(i).lv", bytes))
    }
    return out
  }

  static func check(_ input: [UInt8]) throws {
    let registry = session()
    guard let value = try? ValueCodec.decode(input, registry: registry) else { return }
    guard let first = try? ValueCodec.encode(value) else { return }
    let again: Value
    do { again = try ValueCodec.decode(first, registry: registry) } catch {
      throw FuzzFinding("a value's own encoding does not decode: \(error)")
    }
    guard let second = try? ValueCodec.encode(again), second == first else {
      throw FuzzFinding("encoding is not a fixed point for \(value.display)")
    }
  }
}
