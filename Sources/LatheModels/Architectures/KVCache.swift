// The KV cache: keys and values of every layer, preallocated per layer with its own width, grown when a sequence
// outgrows it, truncated to roll back rejected tokens, written in ranges from outside (parallel prefill).

import Foundation
import LatheTensor

/// Keys and values of every layer for positions 0..<count, f32, [capacity, kvHeads·headDimension] per layer.
public final class KVCache: @unchecked Sendable {
  public private(set) var capacity: Int
  /// Positions filled so far.
  public internal(set) var count = 0
  let widths: [Int]
  var keys: [Storage], values: [Storage]

  public init(config: LlamaConfig, capacity: Int) throws {
    let capacity = Swift.max(1, Swift.min(capacity, config.contextLength))
    self.capacity = capacity
    widths = config.kvHeadCounts.map { $0 * config.headDimension }
    keys = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
    values = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
  }

  /// Bytes held by the cache.
  public var byteCount: Int { (keys + values).reduce(0) { $0 + $1.byteCount } }

  /// Makes room for `needed` positions, copying what is there (capacity at least doubles).
  func reserve(_ needed: Int, limit: Int) throws {
    guard needed > capacity else { return }
    guard needed <= limit else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "\(needed) positions exceed the model's context of \(limit)")
    }
    let newCapacity = Swift.min(limit, Swift.max(needed, capacity * 2))
    for l in 0..<widths.count {
      let k = try Storage(byteCount: newCapacity * widths[l] * 4, op: "kv cache", zeroed: false)
      let v = try Storage(byteCount: newCapacity * widths[l] * 4, op: "kv cache", zeroed: false)
      k.bytes.copyMemory(from: keys[l].bytes, byteCount: count * widths[l] * 4)
      v.bytes.copyMemory(from: values[l].bytes, byteCount: count * widths[l] * 4)
      keys[l] = k; values[l] = v
    }
    capacity = newCapacity
  }

  /// Forgets positions from `position` on (the next token is written there).
  public func truncate(to position: Int) { count = Swift.max(0, Swift.min(count, position)) }

  /// Writes positions position..<position+rows of layer `layer` from `keys` and `values` ([rows, width] floats each,
  /// width = kvHeads·headDimension of that layer), growing the cache as needed (up to `limit` positions). The count
  /// is left alone: set it with `setCount` once every layer is written.
  public func write(layer: Int, at position: Int, rows: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>,
                    limit: Int) throws {
    guard layer >= 0, layer < widths.count, position >= 0, rows >= 0 else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "cannot write layer \(layer), positions \(position)..<\(position + rows)")
    }
    try reserve(position + rows, limit: limit)
    let width = widths[layer]
    (keys[layer].floats() + position * width).update(from: k, count: rows * width)
    (values[layer].floats() + position * width).update(from: v, count: rows * width)
  }

  /// Mutable access to layer `layer`'s keys and values for positions 0..<rows ([rows, width] floats each,
  /// row-major), the cache grown as needed (up to `limit` positions), to write them in place. The count is left
  /// alone: set it with `setCount` once every layer is written.
  public func withRows<R>(layer: Int, rows: Int, limit: Int,
                          _ body: (_ keys: UnsafeMutablePointer<Float>, _ values: UnsafeMutablePointer<Float>) throws -> R) throws -> R {
    guard layer >= 0, layer < widths.count, rows >= 0 else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "cannot write layer \(layer), positions 0..<\(rows)")
    }
    try reserve(rows, limit: limit)
    return try body(keys[layer].floats(), values[layer].floats())
  }

  /// Sets the number of filled positions (after `write`), at most the capacity.
  public func setCount(_ positions: Int) throws {
    guard positions >= 0, positions <= capacity else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "\(positions) positions do not fit a capacity of \(capacity)")
    }
    count = positions
  }

  /// Floats per position of each layer's keys (and values): kvHeads·headDimension.
  public var layerWidths: [Int] { widths }

  /// Copies of layer `layer`'s keys and values for positions 0..<count ([count, width] each, row-major).
  public func rows(layer: Int) -> (keys: [Float], values: [Float]) {
    let n = count * widths[layer]
    return (Array(UnsafeBufferPointer(start: keys[layer].floats(), count: n)),
            Array(UnsafeBufferPointer(start: values[layer].floats(), count: n)))
  }

  /// A copy holding the same positions (for branching a prefix).
  public func copy() throws -> KVCache {
    let c = try KVCache(widths: widths, capacity: capacity)
    for l in 0..<widths.count {
      c.keys[l].bytes.copyMemory(from: keys[l].bytes, byteCount: count * widths[l] * 4)
      c.values[l].bytes.copyMemory(from: values[l].bytes, byteCount: count * widths[l] * 4)
    }
    c.count = count
    return c
  }

  private init(widths: [Int], capacity: Int) throws {
    self.widths = widths; self.capacity = capacity
    keys = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
    values = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
  }
}
