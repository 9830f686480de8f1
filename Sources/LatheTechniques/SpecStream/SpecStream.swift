// specstream(...): Speculative Streaming (Bhendawade et al., 2024), speculative decoding inside one model. In the
// top `msaLayers` layers each position carries `streams` extra rows (its hidden state plus a learned embedding P_j)
// that attend to the main rows up to it and to the streams before them, and predict the tokens 2..γ+1 ahead. Every
// call verifies the last draft tree with the main rows and drafts the next tree with the streams of the node it
// accepts, so the text is exactly the model's greedy text, in fewer calls.
//
// The forward pass does the multi-stream attention (ForwardHooks.Streams): stream rows are added at the input of
// layer N − N_s, their keys and values stay out of the cache, and the masks here say who sees whom.

import Foundation
import LatheModels
import LatheTensor

public final class SpecStream: DecodingStrategy {
  public let streams: Int, msaLayers: Int, topK: Int
  public let alpha: [Double]
  public let pruneRank: Int, pruneThreshold: Double
  public let streamInit: String, streamPosition: String
  public let loraRank: Int
  /// Where the streams run: "tree" (every node of the verified tree carries γ streams in the verifying call, as the
  /// paper) or "accepted" (after verification, the accepted node's γ streams alone run through the top N_s layers:
  /// a partial pass on γ rows in place of γ·|tree| stream rows in the call; the same drafts).
  public let streamsOn: String
  /// The stream embeddings P_j, [streams, dimension] row-major: zeros until trained (each stream then starts as its
  /// main row, the paper's f_η = identity).
  public internal(set) var embeddings: [Float]?
  /// The pruning adapter, once trained.
  public internal(set) var pruner: Pruner?
  /// "untrained" or "trained".
  public internal(set) var state = "untrained"
  /// Counters over every decode this value ran, updated in place.
  public private(set) var totals = Counters()
  /// Replaces each tree's draft levels before the tree is built, given every token so far (the root last): tests
  /// force every draft wrong, or right, with it.
  public var draftOverride: ((_ tokens: [Int], _ levels: [[Int]]) -> [[Int]])?
  /// The last serial prefill's stream rows at the prompt's last position (final hidden states, [γ, d]).
  var prefillStreams: PrefillRows?
  /// Prompts up to this many tokens prefill in one call with their streams (a stream mask of (n + γ)² entries).
  var wholePromptRows = 512

  public struct Counters: Sendable, Equatable {
    /// Forward calls of the model while decoding (the prefill's call, whose logits give the first token, included).
    public var calls = 0
    /// Passes of the accepted node's stream rows through the top N_s layers (streamsOn "accepted"), one per call
    /// that drafts.
    public var streamPasses = 0
    /// Tokens produced; draft tokens accepted; decodes run.
    public var tokens = 0, accepted = 0, decodes = 0
    /// Nodes of each verified tree (after pruning), and of the full tree drafted.
    public var treeSizes: [Int] = [], fullTreeSizes: [Int] = []
    /// Tokens per call (the call reduction ratio): 1 when no draft is ever right.
    public var callReduction: Double { calls == 0 ? 0 : Double(tokens) / Double(calls) }
    /// Mean tokens advanced per tree call, β = accepted nodes + 1.
    public var meanBeta: Double { treeSizes.isEmpty ? 0 : Double(accepted + treeSizes.count) / Double(treeSizes.count) }
    mutating func add(_ o: Counters) {
      calls += o.calls; streamPasses += o.streamPasses; tokens += o.tokens; accepted += o.accepted; decodes += o.decodes; treeSizes += o.treeSizes
      fullTreeSizes += o.fullTreeSizes
    }
    var fields: [(String, TechniqueArgument)] {
      [("calls", .int(calls)), ("cr", .float(callReduction)), ("accepted", .int(accepted)), ("meanBeta", .float(meanBeta)),
       ("treeSizes", .list(treeSizes.map { .int($0) })), ("fullTreeSizes", .list(fullTreeSizes.map { .int($0) })), ("draftCalls", .int(0)),
       ("streamPasses", .int(streamPasses))]
    }
  }

  public init(streams: Int = 4, msaLayers: Int = 5, topK: Int = 3, alpha: [Double] = [1.0, 0.1], pruneRank: Int = 8,
              pruneThreshold: Double = 0.05, streamInit: String = "identity", streamPosition: String = "same",
              loraRank: Int = 16, streamsOn: String = "tree") throws {
    guard (1...8).contains(streams) else { throw TechniqueError("specstream: streams must be 1 to 8, got \(streams)") }
    guard msaLayers >= 1 else { throw TechniqueError("specstream: msaLayers must be >= 1, got \(msaLayers)") }
    guard (1...8).contains(topK) else { throw TechniqueError("specstream: topK must be 1 to 8, got \(topK)") }
    guard !alpha.isEmpty, alpha.allSatisfy({ $0 >= 0 && $0.isFinite }) else {
      throw TechniqueError("specstream: alpha must be non-negative weights [alpha_0, alpha_j...], got \(alpha)")
    }
    guard pruneRank >= 0 else { throw TechniqueError("specstream: pruneRank must be >= 0, got \(pruneRank)") }
    guard pruneThreshold >= 0 && pruneThreshold < 1 else { throw TechniqueError("specstream: pruneThreshold must be in [0, 1), got \(pruneThreshold)") }
    guard streamInit == "identity" else { throw TechniqueError("specstream: streamInit must be \"identity\" (the paper's f_eta), got \"\(streamInit)\"") }
    guard ["same", "offset"].contains(streamPosition) else {
      throw TechniqueError("specstream: streamPosition must be \"same\" (the main token's position) or \"offset\" (t + j), got \"\(streamPosition)\"")
    }
    guard loraRank >= 1 else { throw TechniqueError("specstream: loraRank must be >= 1, got \(loraRank)") }
    guard ["tree", "accepted"].contains(streamsOn) else {
      throw TechniqueError("specstream: streamsOn must be \"tree\" (streams on every tree node in the verifying call) or \"accepted\" (the accepted node's streams after it), got \"\(streamsOn)\"")
    }
    self.streams = streams; self.msaLayers = msaLayers; self.topK = topK; self.alpha = alpha; self.pruneRank = pruneRank
    self.pruneThreshold = pruneThreshold; self.streamInit = streamInit; self.streamPosition = streamPosition; self.loraRank = loraRank
    self.streamsOn = streamsOn
  }

  public var entry: TechniqueEntry { SpecStream.entry }
  public var description: String {
    "specstream(streams: \(streams), msaLayers: \(msaLayers), topK: \(topK), alpha: \(TechniqueArgument.list(alpha.map { .float($0) })), "
      + "pruneRank: \(pruneRank), pruneThreshold: \(TechniqueArgument.float(pruneThreshold)), streamInit: \"\(streamInit)\", "
      + "streamPosition: \"\(streamPosition)\", loraRank: \(loraRank), streamsOn: \"\(streamsOn)\")"
  }
  public var fields: [(String, TechniqueArgument)] {
    [("streams", .int(streams)), ("msaLayers", .int(msaLayers)), ("topK", .int(topK)), ("streamsOn", .string(streamsOn)), ("state", .string(state))]
      + totals.fields
  }
  /// Untrained, it is its description; trained parts are kept with the model they were trained on.
  public func saved() throws -> [UInt8]? { state == "untrained" ? Array(description.utf8) : nil }

  public static let entry = TechniqueEntry(
    name: "specstream", roles: [.decodingStrategy],
    parameters: [TechniqueParameter("streams", .int(4), "gamma: speculative streams, the tokens 2..gamma+1 ahead each call drafts"),
                 TechniqueParameter("msaLayers", .int(5), "N_s: the top layers that run the streams (multi-stream attention)"),
                 TechniqueParameter("topK", .int(3), "k: draft tokens per stream, a tree of 1 + k + k^2 + ... + k^gamma nodes"),
                 TechniqueParameter("alpha", .list([.float(1.0), .float(0.1)]), "training loss weights: alpha_0 for the next token, alpha_j for each stream"),
                 TechniqueParameter("pruneRank", .int(8), "theta: rank of the pruning adapter's early-exit head"),
                 TechniqueParameter("pruneThreshold", .float(0.05), "tree pruning: children below this transition probability go (0: no pruning)"),
                 TechniqueParameter("streamInit", .string("identity"), "f_eta: a stream starts as its main row's hidden state"),
                 TechniqueParameter("streamPosition", .string("same"), "RoPE position of stream j at t: \"same\" (t) or \"offset\" (t + j)"),
                 TechniqueParameter("loraRank", .int(16), "rank of the LoRA adapters training puts on the top msaLayers layers"),
                 TechniqueParameter("streamsOn", .string("tree"), "\"tree\": every tree node carries its streams in the verifying call (the paper); \"accepted\": the accepted node's streams run after it through the top layers alone")],
    doc: "Speculative Streaming for generate(m, p, t) and decode(m, kv, t): in the top msaLayers layers every position carries `streams` extra rows (its hidden state plus a learned embedding) that draft the next tokens in the same call that verifies the last draft tree, so the text is exactly greedy in fewer calls. The generation reports calls, cr (tokens per call), accepted, meanBeta and treeSizes.",
    example: "generate(m, \"SELECT\", specstream(streams: 4, topK: 1), tokens: 32)",
    make: { a in
      guard case .list(let weights) = a["alpha"] else { throw TechniqueError("specstream: 'alpha' must be a list of weights, got \(a["alpha"].typeName)") }
      let alpha = try weights.map { w -> Double in
        switch w {
        case .int(let i): return Double(i)
        case .float(let x): return x
        default: throw TechniqueError("specstream: 'alpha' must hold numbers, got \(w.typeName)")
        }
      }
      return try SpecStream(streams: try a.int("streams"), msaLayers: try a.int("msaLayers"), topK: try a.int("topK"), alpha: alpha,
                            pruneRank: try a.int("pruneRank"), pruneThreshold: try a.double("pruneThreshold"),
                            streamInit: try a.string("streamInit"), streamPosition: try a.string("streamPosition"),
                            loraRank: try a.int("loraRank"), streamsOn: try a.string("streamsOn"))
    },
    decode: { bytes in try Techniques.parse(String(decoding: bytes, as: UTF8.self)) })

  // MARK: the draft tree and its masks

  /// A flattened draft tree: node 0 the root (the token the model has just chosen), then level by level; every node
  /// of level g−1 has each token of level g as a child.
  public struct DraftTree: Equatable, Sendable {
    public var tokens: [Int], parents: [Int], depths: [Int]
    public var count: Int { tokens.count }

    public init(root: Int, levels: [[Int]]) {
      tokens = [root]; parents = [-1]; depths = [0]
      var previous = [0]
      for (g, level) in levels.enumerated() {
        var next: [Int] = []
        for p in previous {
          for t in level {
            tokens.append(t); parents.append(p); depths.append(g + 1)
            next.append(tokens.count - 1)
          }
        }
        previous = next
      }
    }

    /// Node i's ancestors and itself, root first.
    public func path(to i: Int) -> [Int] {
      var out = [i], n = i
      while parents[n] >= 0 { n = parents[n]; out.append(n) }
      return out.reversed()
    }

    /// Whether node i sees node j: j is i or one of its ancestors.
    public func sees(_ i: Int, _ j: Int) -> Bool {
      var n = i
      while n >= 0 { if n == j { return true }; n = parents[n] }
      return false
    }

    public func children(of i: Int) -> [Int] { (0..<count).filter { parents[$0] == i } }
  }

  /// The size of a full tree: 1 + k + k² + … + k^γ.
  public static func treeSize(topK k: Int, levels: Int) -> Int { (0...levels).reduce(0) { $0 + Int(pow(Double(k), Double($1))) } }

  /// The lower layers' mask over [cache rows 0..<start, the n nodes]: every cached row, and each node's ancestors
  /// and itself. [n, start + n], 0 or −∞.
  public static func treeMask(_ tree: DraftTree, start: Int) -> [Float] {
    let n = tree.count, width = start + n
    var mask = [Float](repeating: -.infinity, count: n * width)
    for i in 0..<n {
      for c in 0..<start { mask[i * width + c] = 0 }
      for j in tree.path(to: i) { mask[i * width + start + j] = 0 }
    }
    return mask
  }

  /// The stream layers' mask over [cache rows 0..<start, n main rows, the stream rows]: a main row as `sees` says
  /// (never a stream row); stream j of main row r: every cached row, the main rows r sees, and streams 1..j of r.
  /// Stream rows follow the main rows in (r, j) order for r in `rows`. [R, start + R], R = n + rows.count·γ.
  public static func streamMask(mainRows n: Int, start: Int, streams γ: Int, rows: [Int], sees: (Int, Int) -> Bool) -> [Float] {
    let total = n + rows.count * γ, width = start + total
    var mask = [Float](repeating: -.infinity, count: total * width)
    func open(_ row: Int, mainOf r: Int) {
      for c in 0..<start { mask[row * width + c] = 0 }
      for k in 0..<n where sees(r, k) { mask[row * width + start + k] = 0 }
    }
    for i in 0..<n { open(i, mainOf: i) }
    for (s, r) in rows.enumerated() {
      for j in 0..<γ {
        let row = n + s * γ + j
        open(row, mainOf: r)
        for j2 in 0...j { mask[row * width + start + n + s * γ + j2] = 0 }
      }
    }
    return mask
  }

  // MARK: decoding

  /// The stream embeddings for `model` (zeros the first time: each stream starts as its main row).
  func streamEmbeddings(for model: LlamaModel) throws -> [Float] {
    let d = model.config.dimension
    if let embeddings {
      guard embeddings.count == streams * d else {
        throw TechniqueError("specstream: its stream embeddings are \(embeddings.count / Swift.max(1, streams)) wide, the model's dimension is \(d)")
      }
      return embeddings
    }
    let zeros = [Float](repeating: 0, count: streams * d)
    embeddings = zeros
    return zeros
  }

  /// One call on `tree` at the cache's next positions with streams on every node: the main rows' logits [n, vocab]
  /// and each node's stream logits, computed for `streamsOf` once the main logits have chosen it.
  struct TreeCall {
    var main: [Float]
    /// The final hidden states (before the output norm) of every stream row, [survivors·γ, d].
    var streamHidden: [Float]
    /// The nodes that kept their streams (all of them without pruning), in order: node survivors[s] has the stream
    /// rows s·γ..<(s + 1)·γ.
    var survivors: [Int]
  }

  /// The nodes tree pruning keeps: the root, and each child of a kept node whose transition probability
  /// `probability(parent, child)` is at least `threshold` (with its subtree only then). In node order; a subtree of
  /// the tree, never larger, all of it at threshold 0.
  public static func prune(_ tree: DraftTree, threshold: Double, probability: (Int, Int) -> Double) -> [Int] {
    var kept = [Bool](repeating: false, count: tree.count)
    kept[0] = true
    for i in 1..<Swift.max(1, tree.count) where kept[tree.parents[i]] {
      kept[i] = threshold <= 0 || probability(tree.parents[i], i) >= threshold
    }
    return (0..<tree.count).filter { kept[$0] }
  }

  /// The pruner's transition probabilities for every parent in `tree`: early-exit logits H(o_θ(x)) of its hidden
  /// state x entering the stream layers, softmax at each child's token. Keyed by child node.
  func transitionProbabilities(_ model: LlamaModel, pruner: Pruner, tree: DraftTree, hidden: UnsafePointer<Float>) throws -> [Double] {
    let d = model.config.dimension, θ = pruner.rank, vocab = model.config.vocabularySize
    let parents = Array(Set(tree.parents.dropFirst())).sorted()
    var rows = [Float](repeating: 0, count: parents.count * d)
    for (k, p) in parents.enumerated() {
      let x = hidden + p * d
      var low = [Float](repeating: 0, count: θ)
      for r in 0..<θ { var sum: Float = 0; for c in 0..<d { sum += pruner.a[r * d + c] * x[c] }; low[r] = sum }
      for c in 0..<d {
        var sum = x[c]
        for r in 0..<θ { sum += pruner.b[c * θ + r] * low[r] }
        rows[k * d + c] = sum
      }
    }
    let logits = try model.headLogits(hidden: rows, rows: parents.count)
    var probability = [Double](repeating: 1, count: tree.count)
    for (k, p) in parents.enumerated() {
      let z = logits[(k * vocab)..<((k + 1) * vocab)]
      let logSum = SpecStream.logSumExp(z)
      for child in tree.children(of: p) { probability[child] = Foundation.exp(Double(z[k * vocab + tree.tokens[child]]) - logSum) }
    }
    return probability
  }

  func call(_ model: LlamaModel, tree: DraftTree, cache: KVCache, levels γ: Int) throws -> TreeCall {
    let start = cache.count, n = tree.count, d = model.config.dimension
    let layer = model.config.layerCount - msaLayers
    let positions = tree.depths.map { start + $0 }
    var hooks = ForwardHooks(positions: positions, mask: SpecStream.treeMask(tree, start: start), batchedRows: true)
    let rows = Array(0..<n)
    let streamPositions = rows.flatMap { r in (1...γ).map { j in positions[r] + (streamPosition == "offset" ? j : 0) } }
    hooks.streams = ForwardHooks.Streams(
      layer: layer, count: γ, embeddings: Array(try streamEmbeddings(for: model).prefix(γ * d)), rows: rows,
      positions: streamPositions, mask: SpecStream.streamMask(mainRows: n, start: start, streams: γ, rows: rows, sees: tree.sees))
    var survivors = rows
    if let pruner, pruneThreshold > 0, n > 1 {
      guard pruner.dimension == d else { throw TechniqueError("specstream: its pruner is \(pruner.dimension) wide, the model's dimension is \(d)") }
      let threshold = pruneThreshold, offset = streamPosition == "offset"
      hooks.streams?.select = { [unowned self] hidden, _ in
        let p = try self.transitionProbabilities(model, pruner: pruner, tree: tree, hidden: hidden)
        survivors = SpecStream.prune(tree, threshold: threshold) { _, child in p[child] }
        return .init(rows: survivors, positions: survivors.flatMap { r in (1...γ).map { j in positions[r] + (offset ? j : 0) } },
                     mask: SpecStream.streamMask(mainRows: n, start: start, streams: γ, rows: survivors, sees: tree.sees))
      }
    }
    hooks.headRows = n
    var hidden: [Float] = []
    let last = model.config.layerCount - 1
    hooks.observe = { a in
      guard a.layer == last, a.point == .layerOutput else { return }
      hidden = Array(UnsafeBufferPointer(start: a.values + n * d, count: (a.rows - n) * d))
    }
    let main = try model.forward(tree.tokens, cache: cache, allLogits: true, hooks: hooks)
    return TreeCall(main: main, streamHidden: hidden, survivors: survivors)
  }

  /// The prefill with γ streams at the prompt's last position (the paper's step 1): the main rows run as in a
  /// plain prefill (the streams never reach them) and the streams' final hidden states are kept, so the decode of
  /// this cache drafts its first tree from them. A long prompt runs all but its last token first, so that the
  /// stream mask covers one row and its streams, not the whole prompt. A plain prefill where the streams would not
  /// fit the context.
  public func serialPrefill(_ model: LlamaModel, _ prompt: [Int], extra: Int) throws -> (cache: KVCache, logits: [Float]) {
    let n = prompt.count, d = model.config.dimension, L = model.config.layerCount, γ = streams
    guard n >= 1, msaLayers <= L, n + γ <= model.config.contextLength else { return try model.prefill(prompt, extra: extra) }
    let cache = try model.makeCache(capacity: Swift.max(model.cacheCapacity(prompt: n, extra: extra), n + γ))
    let split = n > wholePromptRows ? n - 1 : 0
    if split > 0 { _ = try model.forward(Array(prompt[0..<split]), cache: cache, logits: false) }
    let rows = n - split
    var hooks = ForwardHooks()
    hooks.streams = ForwardHooks.Streams(
      layer: L - msaLayers, count: γ, embeddings: Array(try streamEmbeddings(for: model).prefix(γ * d)), rows: [rows - 1],
      positions: (1...γ).map { n - 1 + (streamPosition == "offset" ? $0 : 0) },
      mask: SpecStream.streamMask(mainRows: rows, start: split, streams: γ, rows: [rows - 1], sees: { $1 <= $0 }))
    var hidden: [Float] = []
    hooks.observe = { a in
      guard a.layer == L - 1, a.point == .layerOutput else { return }
      hidden = Array(UnsafeBufferPointer(start: a.values + rows * d, count: γ * d))
    }
    let logits = try model.forward(Array(prompt[split...]), cache: cache, hooks: hooks)
    prefillStreams = PrefillRows(cache: cache, count: n, hidden: hidden)
    return (cache, logits)
  }



  /// streamsOn "accepted", the verifying call: the tree's main rows alone. Returns their logits [n, vocab] and their
  /// hidden states entering the stream layers [n, d].
  func verify(_ model: LlamaModel, tree: DraftTree, cache: KVCache) throws -> (main: [Float], hidden: [Float]) {
    let start = cache.count, n = tree.count, d = model.config.dimension
    let first = model.config.layerCount - msaLayers
    var hooks = ForwardHooks(positions: tree.depths.map { start + $0 }, mask: SpecStream.treeMask(tree, start: start), batchedRows: true)
    hooks.headRows = n
    var hidden: [Float] = []
    if first > 0 {
      hooks.observe = { a in
        guard a.layer == first - 1, a.point == .layerOutput else { return }
        hidden = Array(UnsafeBufferPointer(start: a.values, count: n * d))
      }
    } else {
      hidden = [Float](repeating: 0, count: n * d)
      try hidden.withUnsafeMutableBufferPointer { p in
        guard let base = p.baseAddress else { return }
        for (i, id) in tree.tokens.enumerated() { try model.tokenEmbedding.dequantizeRows(id..<(id + 1), into: base + i * d) }
      }
    }
    let main = try model.forward(tree.tokens, cache: cache, allLogits: true, hooks: hooks)
    return (main, hidden)
  }

  /// streamsOn "accepted": the γ streams of the node just accepted (the cache holds the path to it, itself last),
  /// from its hidden state entering the stream layers through those layers; stream j sees the cache and streams
  /// 1...j, as in the verifying call. One row of draft logits per stream (fewer where the context ends).
  func acceptedStreams(_ model: LlamaModel, hidden: [Float], cache: KVCache, levels: Int) throws -> [[Float]] {
    let d = model.config.dimension, vocab = model.config.vocabularySize, start = cache.count
    let γ = Swift.min(levels, model.config.contextLength - start)
    guard γ >= 1 else { return [] }
    let embeddings = try streamEmbeddings(for: model)
    var rows = [Float](repeating: 0, count: γ * d)
    for j in 0..<γ { for c in 0..<d { rows[j * d + c] = hidden[c] + embeddings[j * d + c] } }
    let position = start - 1
    var mask = [Float](repeating: -.infinity, count: γ * (start + γ))
    for j in 0..<γ { for c in 0...(start + j) { mask[j * (start + γ) + c] = 0 } }
    let out = try model.continueRows(rows, rows: γ, fromLayer: model.config.layerCount - msaLayers, cache: cache,
                                     positions: (1...γ).map { position + (streamPosition == "offset" ? $0 : 0) }, mask: mask)
    let all = try model.headLogits(hidden: out, rows: γ)
    return (0..<γ).map { Array(all[($0 * vocab)..<(($0 + 1) * vocab)]) }
  }

  /// log Σ exp(z), from the largest entry (a softmax's normaliser, in Double).
  static func logSumExp<C: Collection<Float>>(_ z: C) -> Double {
    let top = z.max() ?? 0
    return Double(top) + Foundation.log(z.reduce(0.0) { $0 + Double(Foundation.exp($1 - top)) })
  }

  /// The top `k` token ids of `logits`, best first (ties: the lower id).
  static func top(_ logits: [Float], _ k: Int) -> [Int] {
    var best: [(Float, Int)] = []
    for (i, x) in logits.enumerated() {
      if best.count < k || x > best[best.count - 1].0 {
        var at = best.count
        while at > 0 && best[at - 1].0 < x { at -= 1 }
        best.insert((x, i), at: at)
        if best.count > k { best.removeLast() }
      }
    }
    return best.map(\.1)
  }

  public func decode(_ model: LlamaModel, context: [Int], cache: KVCache, logits: [Float]?, maxTokens: Int, sampler: inout Sampler,
                     stop: [String], onToken: (Int, String) throws -> Void) throws -> DecodingResult {
    guard msaLayers <= model.config.layerCount else {
      throw TechniqueError("specstream: msaLayers \(msaLayers) is more than the model's \(model.config.layerCount) layers")
    }
    let vocab = model.config.vocabularySize, d = model.config.dimension
    var counters = Counters()
    // The first tree's drafts: the streams the serial prefill ran at the last prompt position, if it was this cache's.
    var first: [[Float]] = []
    if let rows = prefillStreams?.rows(for: cache), rows.count == streams * d {
      let all = try model.headLogits(hidden: rows, rows: streams)
      first = (0..<streams).map { Array(all[($0 * vocab)..<(($0 + 1) * vocab)]) }
    }
    prefillStreams = nil
    if streamsOn == "accepted" {
      var passes = 0
      let result = try SpecStream.treeDecode(name: "specstream", model, context: context, cache: cache, logits: logits, maxTokens: maxTokens,
                                             sampler: sampler, stop: stop, levels: streams, topK: topK, rowsPerNode: { _ in 1 },
                                             first: first, override: draftOverride, counters: &counters, onToken: onToken) { tree, γ in
        let c = try verify(model, tree: tree, cache: cache)
        return TreeStep(main: c.main, survivors: Array(0..<tree.count)) { node in
          passes += 1
          return try self.acceptedStreams(model, hidden: Array(c.hidden[(node * d)..<((node + 1) * d)]), cache: cache, levels: γ)
        }
      }
      counters.streamPasses = passes
      totals.add(counters)
      return DecodingResult(generation: result, counters: counters.fields)
    }
    let result = try SpecStream.treeDecode(name: "specstream", model, context: context, cache: cache, logits: logits, maxTokens: maxTokens,
                                           sampler: sampler, stop: stop, levels: streams, topK: topK, rowsPerNode: { 1 + $0 },
                                           first: first, override: draftOverride, counters: &counters, onToken: onToken) { tree, γ in
      let c = try call(model, tree: tree, cache: cache, levels: γ)
      return TreeStep(main: c.main, survivors: c.survivors) { node in
        // Stream logits of `node` (γ rows of vocab) from the call's hidden states.
        guard let i = c.survivors.firstIndex(of: node) else { throw TechniqueError("specstream: node \(node) has no streams") }
        let all = try model.headLogits(hidden: Array(c.streamHidden[(i * γ * d)..<((i + 1) * γ * d)]), rows: γ)
        return (0..<γ).map { Array(all[($0 * vocab)..<(($0 + 1) * vocab)]) }
      }
    }
    totals.add(counters)
    return DecodingResult(generation: result, counters: counters.fields)
  }

  /// What one tree call gives the loop: the main rows' logits [n, vocab], the nodes that may be accepted, and the
  /// draft logits (one row per level) at an accepted node.
  struct TreeStep {
    var main: [Float], survivors: [Int]
    var drafts: (Int) throws -> [[Float]]
  }

  /// The greedy tree loop Speculative Streaming and Medusa share: the prefill's logits give the first token, whose
  /// tree is itself alone; then each call verifies a tree built from the accepted node's drafts (root = the model's choice, emitted at once;
  /// level g = the top-k of draft g) and compacts the cache to the accepted path. `rowsPerNode(γ)`: the rows a node
  /// takes in a call (1 + γ with streams).
  static func treeDecode(name: String, _ model: LlamaModel, context: [Int], cache: KVCache, logits: [Float]?, maxTokens: Int, sampler: Sampler,
                         stop: [String], levels: Int, topK: Int, rowsPerNode: (Int) -> Int, first: [[Float]] = [],
                         override: (([Int], [[Int]]) -> [[Int]])?, counters: inout Counters, onToken: (Int, String) throws -> Void,
                         run: (DraftTree, Int) throws -> TreeStep) throws -> Generation {
    guard sampler.temperature == 0 else {
      throw TechniqueError("\(name): verification is greedy, so decoding needs temperature 0, got \(sampler.temperature)")
    }
    guard maxTokens >= 0 else { throw TechniqueError("\(name): tokens must be >= 0, got \(maxTokens)") }
    guard cache.count == context.count, !context.isEmpty, logits != nil else {
      throw TechniqueError("\(name): the KV cache holds \(cache.count) positions for \(context.count) tokens of context")
    }
    counters.decodes = 1
    let started = DispatchTime.now().uptimeNanoseconds
    let limit = model.config.contextLength, vocab = model.config.vocabularySize
    var out = GreedyOutput(model: model, context: context, stop: stop, maxTokens: maxTokens, limit: limit)
    var tokens = 0
    func emit(_ id: Int) throws -> Bool { tokens += 1; return try out.emit(id, onToken) }

    // The prefill's call gives the first token, and the first tree's drafts when the strategy's own prefill made
    // them (`first`); otherwise the first tree is its root alone, which has to run anyway (plain decoding runs it
    // too), and its streams draft the next tree.
    guard let logits, logits.count >= vocab else { throw TechniqueError("\(name): the prefill gave \(logits?.count ?? 0) logits, not \(vocab)") }
    counters.calls += 1
    var γ = levels
    var mainLogits = Array(logits.prefix(vocab))
    var drafts = first
    while out.result.tokens.count < maxTokens {
      let root = Sampler.argmax(mainLogits)
      if try emit(root) { break }
      // The tree must fit: its rows after the cache.
      let start = cache.count
      var levels = drafts.map { SpecStream.top($0, topK) }
      while !levels.isEmpty, start + SpecStream.treeSize(topK: topK, levels: levels.count) * rowsPerNode(γ) > limit { levels.removeLast() }
      if let override { levels = override(out.tokens, levels) }
      let tree = DraftTree(root: root, levels: levels)
      γ = Swift.min(γ, Swift.max(1, (limit - start) / tree.count - 1))
      guard start + tree.count * rowsPerNode(γ) <= limit else { out.result.stopReason = "context"; break }
      let c = try run(tree, γ)
      counters.calls += 1
      counters.treeSizes.append(c.survivors.count)
      counters.fullTreeSizes.append(tree.count)
      // Follow the kept child that equals the model's own choice at each accepted node.
      let kept = Set(c.survivors)
      var node = 0, path = [0], done = false
      while !done, let child = tree.children(of: node).first(where: {
        kept.contains($0) && tree.tokens[$0] == Sampler.argmax(Array(c.main[(node * vocab)..<((node + 1) * vocab)]))
      }) {
        node = child
        path.append(child)
        counters.accepted += 1
        done = try emit(tree.tokens[child])
      }
      try cache.compact(from: start, keeping: path)
      if done { break }
      mainLogits = Array(c.main[(node * vocab)..<((node + 1) * vocab)])
      drafts = try c.drafts(node)
    }
    counters.tokens = tokens
    // As after a plain decode, the last token is pending: the cache holds the tokens before it.
    if cache.count >= out.tokens.count, out.tokens.count > context.count { cache.truncate(to: out.tokens.count - 1) }
    try out.finish(onToken)
    var result = out.result
    result.decodeSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    return result
  }
}
