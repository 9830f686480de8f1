// Tensor: shape, strides and offset over shared storage. Views share storage; writes copy first when shared.

/// A dense n-dimensional array of f32 (or i32) elements, row-major by default.
///
///     let a = try Tensor.arange(0, 6).reshaped(to: [2, 3])     // [[0, 1, 2], [3, 4, 5]]
public struct Tensor {
  public private(set) var storage: Storage
  public let shape: [Int]
  /// Element strides per axis (may be 0 for broadcast views, never negative).
  public let strides: [Int]
  public let offset: Int
  public let dtype: DType

  public var rank: Int { shape.count }
  public var count: Int { shape.reduce(1, *) }

  init(storage: Storage, shape: [Int], strides: [Int], offset: Int, dtype: DType) {
    self.storage = storage; self.shape = shape; self.strides = strides; self.offset = offset; self.dtype = dtype
  }

  /// A new zero-filled tensor. Throws for negative dimensions or more memory than the budget allows.
  public init(zeros shape: [Int], dtype: DType = .f32, op: String = "zeros") throws {
    guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(op: op, shape: shape, reason: "has a negative dimension") }
    guard shape.count <= 32 else { throw TensorError.invalidShape(op: op, shape: shape, reason: "has more than 32 dimensions") }
    // The strides multiply the dimensions after each axis, so they must not overflow even when another axis is 0.
    guard let n = Memory.count(shape), Memory.count(shape.map { Swift.max($0, 1) }) != nil else {
      throw TensorError.outOfMemory(op: op, bytes: Int.max, budget: Memory.budget)
    }
    guard let bytes = dtype.bytes(forElements: n) else {
      throw TensorError.invalidShape(op: op, shape: shape, reason: "holds \(n) elements, not a whole number of \(dtype) blocks of \(dtype.blockSize)")
    }
    storage = try Storage(byteCount: bytes, op: op)
    self.shape = shape
    strides = Tensor.contiguousStrides(shape)
    offset = 0
    self.dtype = dtype
  }

  /// A tensor whose elements the caller writes, every one, before anyone reads them (op outputs).
  init(uninitialized shape: [Int], dtype: DType = .f32, op: String) throws {
    guard shape.allSatisfy({ $0 >= 0 }), shape.count <= 32 else { try self.init(zeros: shape, dtype: dtype, op: op); return }
    // As in init(zeros:): the strides multiply the sizes after each axis even when another axis is 0.
    guard let n = Memory.count(shape), Memory.count(shape.map { Swift.max($0, 1) }) != nil else {
      throw TensorError.outOfMemory(op: op, bytes: Int.max, budget: Memory.budget)
    }
    guard let bytes = dtype.bytes(forElements: n) else {
      throw TensorError.invalidShape(op: op, shape: shape, reason: "holds \(n) elements, not a whole number of \(dtype) blocks of \(dtype.blockSize)")
    }
    self.init(storage: try Storage(byteCount: bytes, op: op, zeroed: false), shape: shape,
              strides: Tensor.contiguousStrides(shape), offset: 0, dtype: dtype)
  }

  /// A tensor holding `values` with `shape` (whose element count must match).
  public init(_ values: [Float], shape: [Int]) throws {
    try self.init(zeros: shape, op: "tensor")
    guard values.count == count else {
      throw TensorError.invalidShape(op: "tensor", shape: shape, reason: "needs \(count) values, got \(values.count)")
    }
    values.withUnsafeBufferPointer { src in
      if let base = src.baseAddress { storage.floats().update(from: base, count: values.count) }
    }
  }

  public static func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
      strides[i] = s
      s *= max(shape[i], 1)
    }
    return strides
  }

  /// True when the elements lie in row-major order with no gaps.
  public var isContiguous: Bool {
    var expected = 1
    for i in stride(from: rank - 1, through: 0, by: -1) where shape[i] != 1 {
      if strides[i] != expected { return false }
      expected *= shape[i]
    }
    return true
  }

  /// The elements in row-major order (a copy), as Float; i32 elements convert exactly up to 2^24.
  public var scalars: [Float] {
    if isContiguous && dtype == .f32 { return Array(UnsafeBufferPointer(start: readPointer(), count: count)) }
    var out: [Float] = []
    out.reserveCapacity(count)
    forEachOffset { out.append(self.element(atOffset: $0)) }
    return out
  }

  /// Pointer to the first element, for reading.
  public func readPointer() -> UnsafeMutablePointer<Float> { storage.floats(at: offset) }

  func element(atOffset o: Int) -> Float {
    dtype.load(storage.bytes, o)
  }

  /// Calls `body` with the storage offset of each element, in row-major order.
  func forEachOffset(_ body: (Int) -> Void) {
    let n = count
    guard n > 0 else { return }
    if rank == 0 { body(offset); return }
    var index = [Int](repeating: 0, count: rank)
    var o = offset
    for _ in 0..<n {
      body(o)
      var axis = rank - 1
      while axis >= 0 {
        index[axis] += 1
        o += strides[axis]
        if index[axis] < shape[axis] { break }
        o -= strides[axis] * shape[axis]
        index[axis] = 0
        axis -= 1
      }
    }
  }

  /// Contiguous f32 elements: self when already so, else a copy.
  public func contiguous() throws -> Tensor {
    if isContiguous && dtype == .f32 { return self }
    return try copied(as: .f32)
  }

  /// Copies `tensors` into one new storage and returns contiguous views of it, in order. A model's few hundred
  /// weights become one allocation, which is large enough for huge pages (`Storage.allocate`): decoding reads every
  /// weight once per token, and scattered 4 KiB pages cost it TLB misses.
  public static func packed(_ tensors: [Tensor], op: String = "pack") throws -> [Tensor] {
    let sources = try tensors.map { $0.isContiguous ? $0 : try $0.copied() }
    return try packed(sources.map { ($0.shape, $0.dtype) }, op: op) { i, destination, bytes in
      let t = sources[i]
      let from = t.dtype.blockSize == 1 ? t.offset * t.dtype.byteSize : t.offset / t.dtype.blockSize * t.dtype.byteSize
      destination.copyMemory(from: t.storage.bytes + from, byteCount: bytes)
    }
  }

  /// New contiguous tensors of the given shapes and dtypes in one storage, each filled by `fill(index, bytes, byteCount)`
  /// with its raw bytes (elements or blocks in the dtype's layout).
  public static func packed(_ layout: [(shape: [Int], dtype: DType)], op: String = "pack",
                            fill: (Int, UnsafeMutableRawPointer, Int) throws -> Void) throws -> [Tensor] {
    var starts: [Int] = [], sizes: [Int] = [], total = 0
    for (shape, dtype) in layout {
      guard shape.allSatisfy({ $0 >= 0 }), let n = Memory.count(shape), let bytes = dtype.bytes(forElements: n) else {
        throw TensorError.invalidShape(op: op, shape: shape, reason: "is not a whole number of \(dtype) blocks")
      }
      // Each tensor starts on a 64-byte boundary that is also a whole number of its elements or blocks.
      let unit = dtype.blockSize == 1 ? 64 : 64 / gcd(64, dtype.byteSize) * dtype.byteSize
      total = (total + unit - 1) / unit * unit
      starts.append(total); sizes.append(bytes)
      let (next, overflow) = total.addingReportingOverflow(bytes)
      guard !overflow else { throw TensorError.outOfMemory(op: op, bytes: Int.max, budget: Memory.budget) }
      total = next
    }
    let storage = try Storage(byteCount: total, op: op, zeroed: false)
    return try layout.enumerated().map { i, item in
      try fill(i, storage.bytes + starts[i], sizes[i])
      let offset = item.dtype.blockSize == 1 ? starts[i] / item.dtype.byteSize : starts[i] / item.dtype.byteSize * item.dtype.blockSize
      return Tensor(storage: storage, shape: item.shape, strides: Tensor.contiguousStrides(item.shape), offset: offset, dtype: item.dtype)
    }
  }

  /// Pointer for writing f32 elements: copies first (contiguous, offset 0) when the storage is shared or this is a
  /// strided view, so a write never shows through another tensor (copy on write).
  public mutating func mutablePointer() throws -> UnsafeMutablePointer<Float> {
    if !isKnownUniquelyReferenced(&storage) || !isContiguous || offset != 0 || dtype != .f32 {
      self = try copied(as: .f32)
    }
    return storage.floats()
  }

  /// A contiguous copy with its own storage.
  public func copied(as type: DType? = nil) throws -> Tensor {
    let out = try Tensor(uninitialized: shape, dtype: type ?? dtype, op: "copy")
    var i = 0
    let target = out.dtype, dst = out.storage.bytes
    if target.isQuantized {
      // Blocks of 32 consecutive (row-major) elements are quantised together.
      var block = [Float](repeating: 0, count: 32)
      forEachOffset { o in
        block[i % 32] = self.element(atOffset: o)
        if i % 32 == 31 { block.withUnsafeBufferPointer { if let b = $0.baseAddress { target.storeBlock(b, dst, block: i / 32) } } }
        i += 1
      }
      return out
    }
    forEachOffset { target.store(self.element(atOffset: $0), dst, i); i += 1 }
    return out
  }
}

private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
