// The KV cache: keys and values of every layer, preallocated in one block, each layer with its own width, grown when a sequence
// outgrows it, truncated to roll back rejected tokens, written in ranges from outside (parallel prefill).

import Foundation
import LatheTensor

/// Keys and values of every layer for positions 0..<count, f32, [capacity, kvHeads·headDimension] per layer.
public final class KVCache: @unchecked Sendable {
  public private(set) var capacity: Int
  /// Positions filled so far.
  public internal(set) var count = 0
  let widths: [Int]
  /// Every layer's keys and values in one block (so that a large cache gets huge pages: a 512-position SmolLM2 cache
  /// is 23.6 MB, 5,760 page faults in 4 KiB pages), and each layer's rows in it, [capacity, width].
  private var block: Storage
  private(set) var keys: [UnsafeMutablePointer<Float>], values: [UnsafeMutablePointer<Float>]

  public init(config: LlamaConfig, capacity: Int) throws {
    let capacity = Swift.max(1, Swift.min(capacity, config.contextLength))
    self.capacity = capacity
    widths = config.kvHeadCounts.map { $0 * config.headDimension }
    (block, keys, values) = try KVCache.allocate(widths: widths, capacity: capacity)
  }

  /// One block for every layer's keys and values of `capacity` positions.
  private static func allocate(widths: [Int], capacity: Int) throws
    -> (Storage, [UnsafeMutablePointer<Float>], [UnsafeMutablePointer<Float>]) {
    let floats = 2 * capacity * widths.reduce(0, +)
    let block = try Storage(byteCount: floats * 4, op: "kv cache", zeroed: false)
    var keys: [UnsafeMutablePointer<Float>] = [], values: [UnsafeMutablePointer<Float>] = []
    var offset = 0
    for w in widths {
      keys.append(block.floats(at: offset)); offset += capacity * w
      values.append(block.floats(at: offset)); offset += capacity * w
    }
    return (block, keys, values)
  }

  /// Bytes held by the cache.
  public var byteCount: Int { block.byteCount }

  /// Makes room for `needed` positions, copying what is there (capacity at least doubles).
  func reserve(_ needed: Int, limit: Int) throws {
    guard needed > capacity else { return }
    guard needed <= limit else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "\(needed) positions exceed the model's context of \(limit)")
    }
    let newCapacity = Swift.min(limit, Swift.max(needed, capacity * 2))
    let (b, k, v) = try KVCache.allocate(widths: widths, capacity: newCapacity)
    for l in 0..<widths.count {
      k[l].update(from: keys[l], count: count * widths[l])
      v[l].update(from: values[l], count: count * widths[l])
    }
    (block, keys, values) = (b, k, v)
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
    (keys[layer] + position * width).update(from: k, count: rows * width)
    (values[layer] + position * width).update(from: v, count: rows * width)
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
    return try body(keys[layer], values[layer])
  }

  /// Keeps rows start + keep[i] at start + i in every layer (keep strictly increasing, after the filled positions
  /// or among them) and sets the count to start + keep.count: a verified draft tree's accepted path, in order.
  public func compact(from start: Int, keeping keep: [Int]) throws {
    guard start >= 0, start <= count, zip(keep, keep.dropFirst()).allSatisfy({ $0 < $1 }), (keep.first ?? 0) >= 0,
          start + (keep.last ?? -1) < capacity else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "cannot keep rows \(keep) after position \(start) of \(capacity)")
    }
    for (l, w) in widths.enumerated() {
      for (i, r) in keep.enumerated() where r != i {
        (keys[l] + (start + i) * w).update(from: keys[l] + (start + r) * w, count: w)
        (values[l] + (start + i) * w).update(from: values[l] + (start + r) * w, count: w)
      }
    }
    count = start + keep.count
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
    return (Array(UnsafeBufferPointer(start: keys[layer], count: n)),
            Array(UnsafeBufferPointer(start: values[layer], count: n)))
  }

  /// A copy holding the same positions (for branching a prefix).
  public func copy() throws -> KVCache {
    let c = try KVCache(widths: widths, capacity: capacity)
    for l in 0..<widths.count {
      c.keys[l].update(from: keys[l], count: count * widths[l])
      c.values[l].update(from: values[l], count: count * widths[l])
    }
    c.count = count
    return c
  }

  private init(widths: [Int], capacity: Int) throws {
    self.widths = widths; self.capacity = capacity
    (block, keys, values) = try KVCache.allocate(widths: widths, capacity: capacity)
  }
}
