// Reshape, transpose, permute and indexing: views over the same storage wherever the layout allows.

extension Tensor {
  /// The same elements in a new shape; one dimension may be -1 (inferred). A view when contiguous.
  public func reshaped(to newShape: [Int]) throws -> Tensor {
    var target = newShape
    let unknown = target.indices.filter { target[$0] == -1 }
    guard unknown.count <= 1, target.allSatisfy({ $0 >= -1 }) else {
      throw TensorError.invalidShape(op: "reshape", shape: newShape, reason: "may have one -1 and no other negative size")
    }
    // Products are checked: a shape whose sizes multiply past Int.max is an error, not a trap. The strides multiply
    // the sizes after each axis even when another axis is 0, so those must not overflow either.
    guard let known = Memory.count(target.filter { $0 != -1 }), Memory.count(target.map { Swift.max($0, 1) }) != nil else {
      throw TensorError.invalidShape(op: "reshape", shape: newShape, reason: "has sizes whose product is too large")
    }
    if let u = unknown.first {
      guard known > 0, count % known == 0 else {
        throw TensorError.invalidShape(op: "reshape", shape: newShape, reason: "does not divide \(count) elements (from \(shape))")
      }
      target[u] = count / known
    }
    guard Memory.count(target) == count else {
      throw TensorError.invalidShape(op: "reshape", shape: newShape, reason: "does not hold the \(count) elements of \(shape)")
    }
    let base = isContiguous ? self : try copied()
    return Tensor(storage: base.storage, shape: target, strides: Tensor.contiguousStrides(target), offset: base.offset, dtype: dtype)
  }

  /// Axes in a new order (a view).
  public func permuted(_ axes: [Int]) throws -> Tensor {
    let normalized = try axes.map { try normalizedAxis($0, op: "permute") }
    guard normalized.count == rank, Set(normalized).count == rank else {
      throw TensorError.invalidArgument(op: "permute", reason: "axes \(axes) are not a permutation of 0..<\(rank)")
    }
    return Tensor(storage: storage, shape: normalized.map { shape[$0] }, strides: normalized.map { strides[$0] },
                  offset: offset, dtype: dtype)
  }

  /// Axes reversed (numpy's transpose with no axes); `.T` in the language.
  public func transposed() throws -> Tensor { try permuted(Array((0..<rank).reversed())) }

  public func swappedAxes(_ a: Int, _ b: Int) throws -> Tensor {
    var axes = Array(0..<rank)
    let x = try normalizedAxis(a, op: "swapaxes"), y = try normalizedAxis(b, op: "swapaxes")
    axes.swapAt(x, y)
    return try permuted(axes)
  }

  /// One component of an index: an int, a slice, `...`, or a new axis of size 1.
  public enum IndexComponent {
    case index(Int)
    case slice(Int?, Int?, Int?)
    case ellipsis
    case newAxis
  }

  /// numpy basic indexing as a view: ints drop an axis, slices keep it (steps > 0), `...` fills, new axes add 1s.
  public func indexed(_ items: [IndexComponent]) throws -> Tensor {
    let consumed = items.filter { if case .newAxis = $0 { return false }; if case .ellipsis = $0 { return false }; return true }.count
    let ellipses = items.filter { if case .ellipsis = $0 { return true }; return false }.count
    guard ellipses <= 1 else { throw TensorError.invalidArgument(op: "index", reason: "an index can have only one '...'") }
    guard consumed <= rank else {
      throw TensorError.invalidArgument(op: "index", reason: "\(consumed) indices for a tensor of rank \(rank) (shape \(shape))")
    }
    var expanded: [IndexComponent] = []
    for item in items {
      if case .ellipsis = item { expanded += Array(repeating: .slice(nil, nil, nil), count: rank - consumed) } else { expanded.append(item) }
    }
    var newShape: [Int] = [], newStrides: [Int] = [], newOffset = offset, axis = 0
    for item in expanded {
      switch item {
      case .newAxis:
        newShape.append(1); newStrides.append(0)
      case .index(let i):
        let size = shape[axis]
        let p = i < 0 ? i + size : i
        guard p >= 0 && p < size else { throw TensorError.indexOutOfRange(op: "index", index: i, size: size, axis: axis) }
        newOffset += p * strides[axis]
        axis += 1
      case .slice(let a, let b, let c):
        let step = c ?? 1
        guard step > 0 else { throw TensorError.invalidArgument(op: "index", reason: "slice steps must be positive for tensors, got \(step)") }
        let size = shape[axis]
        func clamp(_ v: Int?, _ d: Int) -> Int {
          guard var v else { return d }
          if v < 0 { v = v < Int.min + size ? 0 : v + size }
          return Swift.max(0, Swift.min(size, v))
        }
        let start = clamp(a, 0), stop = Swift.max(start, clamp(b, size))
        newShape.append((stop - start + step - 1) / step)
        newStrides.append(strides[axis] * step)
        newOffset += start * strides[axis]
        axis += 1
      case .ellipsis: break
      }
    }
    while axis < rank { newShape.append(shape[axis]); newStrides.append(strides[axis]); axis += 1 }
    return Tensor(storage: storage, shape: newShape, strides: newStrides, offset: newOffset, dtype: dtype)
  }
}

extension Tensor {
  /// The rows (along axis 0) at `indices`, in that order, as a new contiguous tensor.
  public func gatheredRows(_ indices: [Int]) throws -> Tensor {
    guard rank >= 1 else { throw TensorError.invalidArgument(op: "gather", reason: "needs a tensor of rank 1 or more") }
    let rowShape = Array(shape.dropFirst()), rowCount = rowShape.reduce(1, *)
    if dtype.isQuantized && rowCount % dtype.blockSize != 0 { return try copied(as: .f32).gatheredRows(indices) }
    let src = isContiguous ? self : try copied()               // keeps the dtype (labels stay i32)
    var out = try Tensor(uninitialized: [indices.count] + rowShape, dtype: dtype, op: "gather")
    let n = shape[0]
    for (k, i) in indices.enumerated() {
      guard i >= 0 && i < n else { throw TensorError.indexOutOfRange(op: "gather", index: i, size: n, axis: 0) }
      // Bytes per row (whole blocks for the quantised types) and where the row starts in the source.
      let rowBytes = dtype.bytes(forElements: rowCount) ?? 0
      let start = dtype.bytes(forElements: src.offset + i * rowCount) ?? 0
      out.storage.bytes.advanced(by: k * rowBytes).copyMemory(from: src.storage.bytes.advanced(by: start), byteCount: rowBytes)
    }
    return out
  }
}
