// Encoding: special tokens cut out, pre-tokenization, then BPE merges by rank on each word's bytes.

extension BPETokenizer {
  /// The token ids of `text`. With `parseSpecial`, control-token texts such as `<|im_start|>` become their single
  /// ids (user-defined tokens always do, as in llama.cpp); without it they are encoded as ordinary text. `addBOS`
  /// overrides the vocabulary's own `add_bos_token`. Bytes whose single-byte token is missing from the vocabulary
  /// are left out, as llama.cpp does.
  public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int] {
    var out: [Int32] = []
    if addBOS ?? self.addBOS, let bos { out.append(Int32(bos)) }
    let bytes = Array(text.utf8)
    out.reserveCapacity(out.count + bytes.count / 3)
    var merger = Merger()
    for piece in partition(bytes, parseSpecial: parseSpecial) {
      switch piece {
      case .special(let id): out.append(id)
      case .text(let range): encodeText(bytes, range, into: &out, merger: &merger)
      }
    }
    return out.map(Int.init)
  }

  enum Piece: Equatable { case text(Range<Int>), special(Int32) }

  /// `bytes` cut at special-token texts: for each special token, longest first, every occurrence in the remaining
  /// text pieces is cut out, left to right (llama.cpp's order, so a longer token wins over one inside it).
  func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Piece] {
    var pieces: [Piece] = bytes.isEmpty ? [] : [.text(0..<bytes.count)]
    bytes.withUnsafeBufferPointer { text in
      for special in specials where parseSpecial || !special.onlyWhenParsingSpecial {
        let needle = special.bytes, first = needle[0], length = needle.count
        var next: [Piece] = []
        var changed = false
        for piece in pieces {
          guard case .text(let range) = piece, range.count >= length else { next.append(piece); continue }
          var start = range.lowerBound, i = range.lowerBound
          while i + length <= range.upperBound {
            if text[i] == first && needle.withUnsafeBufferPointer({ n in
              var k = 1
              while k < length && text[i + k] == n[k] { k += 1 }
              return k == length
            }) {
              if start < i { next.append(.text(start..<i)) }
              next.append(.special(special.id))
              i += length
              start = i
              changed = true
            } else {
              i += 1
            }
          }
          if start < range.upperBound { next.append(.text(start..<range.upperBound)) }
        }
        if changed { pieces = next }
      }
    }
    return pieces
  }

  /// Pre-tokenizes `bytes[range]` and appends each word's tokens.
  func encodeText(_ bytes: [UInt8], _ range: Range<Int>, into out: inout [Int32], merger: inout Merger) {
    let text = ScalarText(bytes, range: range)
    for word in preTokenizer.split(text, 0..<text.count) {
      let wordBytes = bytes[text.byteRange(word)]
      if wordBytes.count == 1 {
        let id = byteTokens[Int(wordBytes[wordBytes.startIndex])]
        if id >= 0 { out.append(id) }
        continue
      }
      if let ids = cache.get(wordBytes) { out += ids; continue }
      let ids = merger.merge(wordBytes, byteTokens: byteTokens, merges: merges)
      cache.set(wordBytes, ids)
      out += ids
    }
  }

  /// Scratch space for merging one word at a time: a doubly linked list of symbols and a min-heap of candidate
  /// merges keyed by `rank << 32 | left position`, so the lowest rank wins and the leftmost pair breaks a tie.
  struct Merger {
    var ids: [Int32] = [], previous: [Int32] = [], next: [Int32] = [], alive: [Bool] = []
    var heap: [UInt64] = []

    mutating func merge(_ word: ArraySlice<UInt8>, byteTokens: [Int32], merges: [UInt64: UInt64]) -> [Int32] {
      let n = word.count
      ids.removeAll(keepingCapacity: true)
      previous.removeAll(keepingCapacity: true)
      next.removeAll(keepingCapacity: true)
      alive.removeAll(keepingCapacity: true)
      heap.removeAll(keepingCapacity: true)
      for (i, byte) in word.enumerated() {
        ids.append(byteTokens[Int(byte)])
        previous.append(Int32(i) - 1)
        next.append(Int32(i) + 1)
        alive.append(true)
      }

      @inline(__always) func rankAndResult(_ left: Int32, _ right: Int32) -> UInt64? {
        guard left >= 0, right >= 0 else { return nil }
        return merges[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))]
      }
      for i in 0..<n - 1 {
        if let m = rankAndResult(ids[i], ids[i + 1]) { push(m & ~0xFFFF_FFFF | UInt64(i)) }
      }
      while let top = pop() {
        let i = Int(top & 0xFFFF_FFFF), rank = top >> 32
        let j = Int(next[i])
        guard alive[i], j < n, let m = rankAndResult(ids[i], ids[j]), m >> 32 == rank else { continue }
        ids[i] = Int32(truncatingIfNeeded: m)
        alive[j] = false
        next[i] = next[j]
        if Int(next[j]) < n { previous[Int(next[j])] = Int32(i) }
        let p = Int(previous[i])
        if p >= 0, let m = rankAndResult(ids[p], ids[i]) { push(m & ~0xFFFF_FFFF | UInt64(p)) }
        let q = Int(next[i])
        if q < n, let m = rankAndResult(ids[i], ids[q]) { push(m & ~0xFFFF_FFFF | UInt64(i)) }
      }
      var out: [Int32] = []
      var i = 0
      while i < n {
        if ids[i] >= 0 { out.append(ids[i]) }
        i = Int(next[i])
      }
      return out
    }

    private mutating func push(_ value: UInt64) {
      heap.append(value)
      var child = heap.count - 1
      while child > 0 {
        let parent = (child - 1) / 2
        guard heap[parent] > heap[child] else { break }
        heap.swapAt(parent, child)
        child = parent
      }
    }

    private mutating func pop() -> UInt64? {
      guard let last = heap.popLast() else { return nil }
      guard !heap.isEmpty else { return last }
      let top = heap[0]
      heap[0] = last
      var parent = 0
      while true {
        let left = 2 * parent + 1, right = left + 1
        var smallest = parent
        if left < heap.count && heap[left] < heap[smallest] { smallest = left }
        if right < heap.count && heap[right] < heap[smallest] { smallest = right }
        if smallest == parent { break }
        heap.swapAt(parent, smallest)
        parent = smallest
      }
      return top
    }
  }
}
