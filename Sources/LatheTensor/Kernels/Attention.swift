// Fused causal attention for prefill, chunks and decode: softmax(Q·Kᵀ/√d + causal mask)·V without the score
// matrix. Queries are taken a tile at a time, with the query heads that share a KV head stacked into one block so
// that each K and V tile is read once for all of them (GQA); keys go by in tiles with an online softmax (a running
// maximum and sum per row, flash-attention style), tiles past the causal edge are never computed, and the one tile
// on the diagonal is masked per row. The two products per tile go through sgemm; the softmax is SIMD (`FastExp`).
// A block of few queries (a decode step, a short chunk) over many keys is split into fixed key ranges whose partial
// results merge in order (split-K), so a long cache keeps every thread busy. The work items depend only on the
// shape, never on the thread count, and each output row is computed by one item: results are the same at any
// number of threads.

import CBLAS
import Foundation

public enum FusedAttention {
  /// Query rows per tile (per query head of a group).
  public static let queryTile = 64
  /// Keys per tile (a multiple of 16: the SIMD softmax reads whole vectors of a tile row).
  public static let keyTile = 128
  /// Keys per range of a split block: a block of one query tile over more keys than this is split.
  public static let splitKeys = 512

  /// out[t, h] = softmax(q[t, h]·K[0...start+t, h/group]ᵀ/√headDim)·V[0...start+t, h/group] for t in 0..<rows and
  /// every query head h: query row t sits at absolute position start + t and sees the keys at positions up to its
  /// own. Queries and the output are [rows, heads·headDim] with the given row strides; keys and values are
  /// [≥ start + rows, kvHeads·headDim] rows of `kvStride` floats (a chunk may pass more keys: those past a query's
  /// position are not read). heads must be a multiple of kvHeads.
  public static func causal(queries q: UnsafePointer<Float>, queryStride: Int,
                            keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int,
                            output: UnsafeMutablePointer<Float>, outputStride: Int,
                            rows T: Int, start: Int, heads: Int, kvHeads: Int, headDim hd: Int, threads: Int) {
    guard T > 0, heads > 0, kvHeads > 0, hd > 0, heads % kvHeads == 0 else { return }
    let group = heads / kvHeads
    let tiles = (T + queryTile - 1) / queryTile
    let splits = tiles == 1 ? Swift.max(1, (start + T + splitKeys - 1) / splitKeys) : 1
    let shape = Shape(group: group, hd: hd, start: start, scale: 1 / Float(hd).squareRoot())
    // The costliest items first (the last query tiles see the most keys), so the pool's counter balances them.
    let items = tiles * kvHeads * splits
    let partialRows = group * Swift.min(T, queryTile)
    var partial: (o: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, l: UnsafeMutablePointer<Float>)? = nil
    if splits > 1 {
      partial = (.allocate(capacity: items * partialRows * hd), .allocate(capacity: items * partialRows),
                 .allocate(capacity: items * partialRows))
    }
    defer { if let partial { partial.o.deallocate(); partial.m.deallocate(); partial.l.deallocate() } }
    nonisolated(unsafe) let partialBuffers = partial
    let body: (Int) -> Void = { item in
      if Cancellation.requested { return }
      let tile = tiles - 1 - item / (kvHeads * splits)
      let kvHead = (item / splits) % kvHeads, split = item % splits
      let first = tile * queryTile, count = Swift.min(queryTile, T - first)
      let visibleEnd = start + first + count                          // keys 0..<visibleEnd are seen by someone
      let keyLow = split * splitKeys, keyHigh = Swift.min(visibleEnd, splits > 1 ? keyLow + splitKeys : visibleEnd)
      let work = Work(rows: group * count, hd: hd)
      defer { work.release() }
      if keyLow < keyHigh {
        attendTile(shape, q: q, queryStride: queryStride, keys: keys, values: values, kvStride: kvStride,
                   kvHead: kvHead, first: first, count: count, keys: keyLow..<keyHigh, work: work)
      }
      if let partialBuffers {
        let base = item * partialRows
        (partialBuffers.o + base * hd).update(from: work.o, count: work.rows * hd)
        (partialBuffers.m + base).update(from: work.m, count: work.rows)
        (partialBuffers.l + base).update(from: work.l, count: work.rows)
      } else {
        finish(shape, work: work, kvHead: kvHead, first: first, count: count, output: output, outputStride: outputStride)
      }
    }
    if threads <= 1 { for i in 0..<items { body(i) } } else { ThreadPool.shared.parallelFor(items, body) }
    guard let partial, !Cancellation.requested else { return }
    // Merge the splits of each KV head in split order: M = max m_s, L = Σ l_s·e^(m_s − M), O = Σ O_s·e^(m_s − M) / L.
    let count = T, rows = group * count
    let merged = Work(rows: rows, hd: hd)
    defer { merged.release() }
    for kvHead in 0..<kvHeads {
      merged.o.update(repeating: 0, count: rows * hd)
      for r in 0..<rows {
        var top = -Float.infinity
        for s in 0..<splits { top = Swift.max(top, partial.m[(kvHead * splits + s) * partialRows + r]) }
        var total: Float = 0
        for s in 0..<splits {
          let at = (kvHead * splits + s) * partialRows + r
          let l = partial.l[at]
          guard l > 0 else { continue }
          let weight = FastExp.exp(partial.m[at] - top)
          total += l * weight
          let src = partial.o + at * hd, dst = merged.o + r * hd
          for c in 0..<hd { dst[c] += src[c] * weight }
        }
        merged.l[r] = total
      }
      finish(shape, work: merged, kvHead: kvHead, first: 0, count: count, output: output, outputStride: outputStride)
    }
  }

  struct Shape {
    let group: Int, hd: Int, start: Int, scale: Float
  }

  /// The buffers of one item: packed queries, a score tile, the unnormalised output and each row's maximum and sum.
  struct Work {
    let rows: Int
    let qp, s, o, m, l: UnsafeMutablePointer<Float>
    init(rows: Int, hd: Int) {
      self.rows = rows
      qp = .allocate(capacity: rows * hd); s = .allocate(capacity: rows * FusedAttention.keyTile)
      o = .allocate(capacity: rows * hd); m = .allocate(capacity: rows); l = .allocate(capacity: rows)
      o.initialize(repeating: 0, count: rows * hd)
      m.initialize(repeating: -.infinity, count: rows)
      l.initialize(repeating: 0, count: rows)
    }
    func release() { qp.deallocate(); s.deallocate(); o.deallocate(); m.deallocate(); l.deallocate() }
  }

  typealias V = SIMD16<Float>
  @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
  @inline(__always) static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
  }

  /// Queries first..<first+count of the heads of `kvHead` against keys `range`: updates the item's running maximum,
  /// sum and unnormalised output. Row r = g·count + i is query head kvHead·group + g at position start + first + i.
  static func attendTile(_ shape: Shape, q: UnsafePointer<Float>, queryStride: Int, keys: UnsafePointer<Float>,
                         values: UnsafePointer<Float>, kvStride: Int, kvHead: Int, first: Int, count: Int,
                         keys range: Range<Int>, work: Work) {
    let hd = shape.hd, group = shape.group, R = work.rows, ldS = keyTile
    for g in 0..<group {
      for i in 0..<count {
        let src = q + (first + i) * queryStride + (kvHead * group + g) * hd, dst = work.qp + (g * count + i) * hd
        for c in 0..<hd { dst[c] = src[c] * shape.scale }
      }
    }
    var k0 = range.lowerBound
    while k0 < range.upperBound {
      let n = Swift.min(keyTile, range.upperBound - k0)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(R), Int32(n), Int32(hd), 1, work.qp, Int32(hd),
                  keys + k0 * kvStride + kvHead * hd, Int32(kvStride), 0, work.s, Int32(ldS))
      for r in 0..<R {
        let position = shape.start + first + r % count
        let visible = Swift.min(n, position - k0 + 1)
        let row = work.s + r * ldS
        guard visible > 0 else { row.update(repeating: 0, count: n); continue }
        let top = rowMaximum(row, visible)
        let previous = work.m[r], next = Swift.max(previous, top)
        let sum = exponentiate(row, visible: visible, width: n, maximum: next)
        let correction = FastExp.exp(previous - next)                 // 0 on the first tile (previous = −∞)
        work.l[r] = work.l[r] * correction + sum
        if correction != 1 {
          let o = work.o + r * hd
          for c in 0..<hd { o[c] *= correction }
        }
        work.m[r] = next
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(R), Int32(hd), Int32(n), 1, work.s, Int32(ldS),
                  values + k0 * kvStride + kvHead * hd, Int32(kvStride), 1, work.o, Int32(hd))
      k0 += n
    }
  }

  /// The largest of row[0..<count] (−∞ for none).
  @inline(__always) public static func rowMaximum(_ row: UnsafePointer<Float>, _ count: Int) -> Float {
    var best = V(repeating: -.infinity)
    var j = 0
    while j + 16 <= count {
      let x = UnsafeRawPointer(row + j).loadUnaligned(as: V.self)
      best = best.replacing(with: x, where: x .> best)
      j += 16
    }
    var top = best.max()
    while j < count { top = Swift.max(top, row[j]); j += 1 }
    return top
  }

  /// row[j] ← e^(row[j] − maximum) for j < visible and 0 for visible ≤ j < width; returns the sum.
  @inline(__always) static func exponentiate(_ row: UnsafeMutablePointer<Float>, visible: Int, width: Int,
                                             maximum: Float) -> Float {
    let top = V(repeating: maximum)
    var sum = V(repeating: 0)
    var j = 0
    while j + 16 <= visible {
      let e = FastExp.exp(load(row + j) - top)
      store(e, row + j)
      sum += e
      j += 16
    }
    if j < visible {
      // The last, partial vector: lanes past `visible` are −∞ before the exponential, so 0 after (the row has room
      // for whole vectors: keyTile is a multiple of 16).
      var x = V(repeating: -.infinity)
      for lane in 0..<(visible - j) { x[lane] = row[j + lane] }
      let e = FastExp.exp(x - top)
      store(e, row + j)
      sum += e
      j += 16
    }
    if j < width { (row + j).update(repeating: 0, count: width - j) }
    return sum.sum()
  }

  /// out rows = o / l for the item's rows.
  static func finish(_ shape: Shape, work: Work, kvHead: Int, first: Int, count: Int,
                     output: UnsafeMutablePointer<Float>, outputStride: Int) {
    let hd = shape.hd
    for r in 0..<work.rows {
      let g = r / count, i = r % count
      let dst = output + (first + i) * outputStride + (kvHead * shape.group + g) * hd, src = work.o + r * hd
      let inverse = work.l[r] > 0 ? 1 / work.l[r] : 0
      for c in 0..<hd { dst[c] = src[c] * inverse }
    }
  }
}
