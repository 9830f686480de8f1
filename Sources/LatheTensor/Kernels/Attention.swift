// Fused causal attention for prefill, chunks and decode: softmax(Q·Kᵀ/√d + causal mask)·V without the score
// matrix. Queries are taken a tile at a time, with the query heads that share a KV head stacked into one block so
// that each K and V tile is read once for all of them (GQA); keys go by in tiles with an online softmax (a running
// maximum and sum per row, flash-attention style), tiles past the causal edge are never computed, and the one tile
// on the diagonal is masked per row. The two products per tile go through sgemm; the softmax is SIMD (`FastExp`).
// A block of few queries (a short chunk) over many keys is split into fixed key ranges whose partial results merge
// in order (split-K), so a long cache keeps every thread busy. Up to `directQueries` query rows (a decode step, a
// speculative draft) skip sgemm: each cache row is read once, in order and prefetched, for every query head (`few`).
// The work items depend only on the shape, never on the thread count, and each output row is computed by one item:
// results are the same at any number of threads.

import CBLAS
import CPrefetch
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
    if T <= directQueries, hd % 16 == 0 {
      few(queries: q, queryStride: queryStride, keys: keys, values: values, kvStride: kvStride, output: output,
          outputStride: outputStride, rows: T, start: start, heads: heads, kvHeads: kvHeads, headDim: hd, threads: threads)
      return
    }
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
    // Each tile's products on the thread that runs it, with one thread or two (BLASThreads: the same bits).
    if threads <= 1 { BLASThreads.single { for i in 0..<items { body(i) } } } else { ThreadPool.shared.parallelFor(items, body) }
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

  /// The query rows that `few` takes (a decode step, a short chunk such as a speculative draft); above this a tile
  /// through sgemm is faster (SmolLM2's shape over 4096 cached rows, 1 thread, all 30 layers: 1 row 24 ms against
  /// 35 through tiles, 4 rows 35 against 66, 8 rows 70 against 60).
  public static let directQueries = 4

  /// `causal` for at most `directQueries` query rows: every query head of every row against one key range per item,
  /// reading each cache row (all KV heads, `kvStride` floats) once, in order, so that the hardware prefetcher streams
  /// it. Taken one KV head at a time, the rows would be short runs far apart, which it does not follow (measured: 4.4
  /// GB/s against 25 for a plain read), and a product of a few rows by a tile through sgemm spends its time packing.
  /// Items are fixed key ranges (`splitKeys`) merged in order, as in `causal`.
  static func few(queries q: UnsafePointer<Float>, queryStride: Int,
                  keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int,
                  output: UnsafeMutablePointer<Float>, outputStride: Int,
                  rows T: Int, start: Int, heads: Int, kvHeads: Int, headDim hd: Int, threads: Int) {
    let group = heads / kvHeads, R = heads * T, scale = 1 / Float(hd).squareRoot()
    let end = start + T                                               // keys 0..<end are seen by some row
    let splits = Swift.max(1, (end + splitKeys - 1) / splitKeys)
    let partial = Work(rows: R * splits, hd: hd, scores: false)
    defer { partial.release() }
    let body: (Int) -> Void = { split in
      if Cancellation.requested { return }
      let work = Work(rows: R, hd: hd)
      defer { work.release() }
      // Row r = h·T + i: query head h at position start + i, scaled.
      for h in 0..<heads {
        for i in 0..<T {
          let src = q + i * queryStride + h * hd, dst = work.qp + (h * T + i) * hd
          for c in 0..<hd { dst[c] = src[c] * scale }
        }
      }
      attendFew(work, keys: keys, values: values, kvStride: kvStride, range: split * splitKeys..<Swift.min(end, (split + 1) * splitKeys),
                start: start, rows: T, group: group, kvHeads: kvHeads, hd: hd)
      (partial.o + split * R * hd).update(from: work.o, count: R * hd)
      (partial.m + split * R).update(from: work.m, count: R)
      (partial.l + split * R).update(from: work.l, count: R)
    }
    if threads <= 1 || splits == 1 { for i in 0..<splits { body(i) } } else { ThreadPool.shared.parallelFor(splits, body) }
    guard !Cancellation.requested else { return }
    // Merge in split order: M = max m_s, L = Σ l_s·e^(m_s − M), out = Σ O_s·e^(m_s − M) / L.
    for r in 0..<R {
      var top = -Float.infinity
      for s in 0..<splits { top = Swift.max(top, partial.m[s * R + r]) }
      let h = r / T, i = r % T
      let dst = output + i * outputStride + h * hd
      dst.update(repeating: 0, count: hd)
      var total: Float = 0
      for s in 0..<splits {
        let l = partial.l[s * R + r]
        guard l > 0 else { continue }
        let weight = FastExp.exp(partial.m[s * R + r] - top)
        total += l * weight
        let src = partial.o + (s * R + r) * hd
        for c in 0..<hd { dst[c] += src[c] * weight }
      }
      let inverse = total > 0 ? 1 / total : 0
      for c in 0..<hd { dst[c] *= inverse }
    }
  }

  /// Keys `range` for the rows of `work` (row r = h·T + i, query head h, position start + i): updates each row's
  /// running maximum, sum and unnormalised output, a tile of `keyTile` keys at a time.
  static func attendFew(_ work: Work, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, kvStride: Int,
                        range: Range<Int>, start: Int, rows T: Int, group: Int, kvHeads: Int, hd: Int) {
    let R = work.rows, ldS = keyTile, vectors = hd / 16, perHead = group * T, rowBytes = kvHeads * hd * 4
    let lastRow = range.upperBound - 1, prefetchRows = FusedAttention.prefetchRows
    var k0 = range.lowerBound
    while k0 < range.upperBound {
      let n = Swift.min(keyTile, range.upperBound - k0)
      // Scores: s[r, j] = q_r · k_(k0+j) of r's KV head, a whole cache row at a time.
      for j in 0..<n {
        let row = keys + (k0 &+ j) &* kvStride
        // The K and V rows `prefetchRows` ahead are asked for now (the V rows are read below a KV head at a time,
        // short runs far apart, which the hardware prefetcher follows poorly).
        let ahead = Swift.min(k0 &+ j &+ prefetchRows, lastRow) &* kvStride
        let keyAhead = UnsafeRawPointer(keys + ahead), valueAhead = UnsafeRawPointer(values + ahead)
        var line = 0
        while line < rowBytes { lathe_prefetch(keyAhead + line); lathe_prefetch(valueAhead + line); line &+= 64 }
        var r = 0
        for kh in 0..<kvHeads {
          let key = row + kh &* hd
          let last = r &+ perHead
          while r &+ 2 <= last {
            let q0 = work.qp + r &* hd, q1 = q0 + hd
            var a0 = load(q0) * load(key), a1 = load(q1) * load(key)
            for c in 1..<vectors {
              let k = load(key + 16 &* c)
              a0 = a0.addingProduct(load(q0 + 16 &* c), k)
              a1 = a1.addingProduct(load(q1 + 16 &* c), k)
            }
            work.s[r &* ldS &+ j] = treeSum(a0)
            work.s[(r &+ 1) &* ldS &+ j] = treeSum(a1)
            r &+= 2
          }
          if r < last {
            let q0 = work.qp + r &* hd
            var a0 = load(q0) * load(key)
            for c in 1..<vectors { a0 = a0.addingProduct(load(q0 + 16 &* c), load(key + 16 &* c)) }
            work.s[r &* ldS &+ j] = treeSum(a0)
            r &+= 1
          }
        }
      }
      // The online softmax, as in attendTile; a row that sees no key of the tile gets zero weights.
      var seen = 0
      for r in 0..<R {
        let visible = Swift.min(n, start + r % T - k0 + 1)
        let row = work.s + r * ldS
        guard visible > 0 else { row.update(repeating: 0, count: n); continue }
        seen = Swift.max(seen, visible)
        let top = rowMaximum(row, visible)
        let previous = work.m[r], next = Swift.max(previous, top)
        let sum = exponentiate(row, visible: visible, width: n, maximum: next)
        let correction = FastExp.exp(previous - next)
        work.l[r] = work.l[r] * correction + sum
        if correction != 1 {
          let o = work.o + r * hd
          for c in 0..<hd { o[c] *= correction }
        }
        work.m[r] = next
      }
      // Outputs: o_r += Σ_j p[r, j]·v_(k0+j) of r's KV head over the keys some row sees, 16 keys at a time (their
      // value rows stay in L1 across the KV heads), two rows by 64 columns of accumulators in registers.
      var j0 = 0
      while j0 < seen {
        let j1 = Swift.min(seen, j0 &+ 16)
        for kh in 0..<kvHeads {
          let column = values + k0 &* kvStride + kh &* hd
          var r = kh &* perHead
          let last = r &+ perHead
          while r < last {
            let pair = r &+ 1 < last
            let o0 = work.o + r &* hd, o1 = pair ? o0 + hd : o0
            let p0 = work.s + r &* ldS, p1 = pair ? p0 + ldS : p0
            var c = 0
            while c < hd {
              if c &+ 64 <= hd {
                var a0 = load(o0 + c), a1 = load(o0 + c + 16), a2 = load(o0 + c + 32), a3 = load(o0 + c + 48)
                var b0 = load(o1 + c), b1 = load(o1 + c + 16), b2 = load(o1 + c + 32), b3 = load(o1 + c + 48)
                for j in j0..<j1 {
                  let v = column + j &* kvStride + c
                  let v0 = load(v), v1 = load(v + 16), v2 = load(v + 32), v3 = load(v + 48)
                  let x = V(repeating: p0[j]), y = V(repeating: p1[j])
                  a0 = a0.addingProduct(x, v0); a1 = a1.addingProduct(x, v1); a2 = a2.addingProduct(x, v2); a3 = a3.addingProduct(x, v3)
                  b0 = b0.addingProduct(y, v0); b1 = b1.addingProduct(y, v1); b2 = b2.addingProduct(y, v2); b3 = b3.addingProduct(y, v3)
                }
                store(a0, o0 + c); store(a1, o0 + c + 16); store(a2, o0 + c + 32); store(a3, o0 + c + 48)
                if pair { store(b0, o1 + c); store(b1, o1 + c + 16); store(b2, o1 + c + 32); store(b3, o1 + c + 48) }
                c &+= 64
              } else {
                var a0 = load(o0 + c), b0 = load(o1 + c)
                for j in j0..<j1 {
                  let v0 = load(column + j &* kvStride + c)
                  a0 = a0.addingProduct(V(repeating: p0[j]), v0); b0 = b0.addingProduct(V(repeating: p1[j]), v0)
                }
                store(a0, o0 + c)
                if pair { store(b0, o1 + c) }
                c &+= 16
              }
            }
            r &+= 2
          }
        }
        j0 = j1
      }
      k0 += n
    }
  }

  /// How many cache rows ahead of the one in use `attendFew` prefetches (8 rows of SmolLM2's cache: 6 KB of keys and
  /// 6 of values; measured 10 → 12 GB/s on 1 thread against none, 16 rows no better).
  static let prefetchRows = 8

  /// Σ lanes as a tree (halves added pairwise): four vector adds where `sum()` is fifteen dependent scalar adds.
  @inline(__always) static func treeSum(_ v: V) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
  }

  struct Shape {
    let group: Int, hd: Int, start: Int, scale: Float
  }

  /// The buffers of one item: packed queries, a score tile, the unnormalised output and each row's maximum and sum.
  struct Work {
    let rows: Int
    let qp, s, o, m, l: UnsafeMutablePointer<Float>
    init(rows: Int, hd: Int, scores: Bool = true) {
      self.rows = rows
      qp = .allocate(capacity: scores ? rows * hd : 1); s = .allocate(capacity: scores ? rows * FusedAttention.keyTile : 1)
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
