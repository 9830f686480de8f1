// Compression figures: SeedLM's exhaustive seed search in (block, seed) pairs per second on Gaussian blocks, and
// the time that projects to for every decoder linear of SmolLM2 (13,271,040 blocks at 4 bits, 8,847,360 at 3).
// Then the whole compressed models: their compression time (measured when they were made: by notebooks/seedlm.lathe,
// or here with the filter "seedlm-compress", which compresses both and writes the files) and their decode speed
// against the model as loaded (Q4_1) and its f32 twin, with the weight bytes each decoding step reads.

import Foundation
import LatheModels
import LatheTechniques
import LatheTensor

enum TechniqueBench {
  static func run(filter: String?) throws {
    if filter.map({ "baselines matvec".contains($0) }) ?? true { try baselineMatvec() }
    if filter.map({ "speculative droplayers".contains($0) }) ?? true { try speculativeDecoding() }
    guard filter.map({ "seedlm compress".contains($0) || $0.contains("seedlm") }) ?? true else { return }
    try searchSpeed()
    try wholeModel(compressNow: filter == "seedlm-compress")
  }

  /// The compressors' matrix-vector products against Q4_1 on SmolLM2's ffn_down shape (576×1536), best of 200 runs,
  /// on 1 and 2 threads: what a decoding step pays per matrix in each packed form.
  static func baselineMatvec() throws {
    let w = try Tensor.randn([576, 1536], seed: 21).binary(.multiply, scalar: 0.02)
    let x = try Tensor.randn([1536], seed: 22).scalars
    var y = [Float](repeating: 0, count: 576)
    func best(_ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) throws -> Void) throws -> Double {
      var fastest = Double.infinity
      try x.withUnsafeBufferPointer { xp in
        try y.withUnsafeMutableBufferPointer { yp in
          guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
          for _ in 0..<200 {
            let start = DispatchTime.now().uptimeNanoseconds
            try body(xb, yb)
            fastest = Swift.min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
          }
        }
      }
      return fastest
    }
    print("\nlathe-bench: matrix-vector product 576×1536 (ffn_down), best of 200, µs")
    print("case".padding(toLength: 44, withPad: " ", startingAt: 0) + "  1 thread  2 threads")
    let q4 = try w.copied(as: .q4_1)
    var rows: [(String, (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) throws -> Void)] =
      [("q4_1", { try q4.matvec($0, into: $1, threads: $2) })]
    let compressors: [any MatrixCompressor] = [try RTN(bits: 4, group: 32), try RTN(bits: 4, group: 128),
                                               try RTN(bits: 4, group: 128, symmetric: true), try KMeans(bits: 4), try KMeans(bits: 3)]
    for c in compressors {
      let m = try c.compress(w) { _, _ in }
      rows.append((c.description, { try m.matvec($0, into: $1, threads: $2) }))
    }
    for (name, run) in rows {
      let one = try best { try run($0, $1, 1) }, two = try best { try run($0, $1, 2) }
      print(name.padding(toLength: 44, withPad: " ", startingAt: 0) + String(format: "%9.1f %10.1f", one, two))
    }
  }

  /// Greedy decoding of 64 tokens after five prompts: plain, and speculative with two droplayers drafts (every other
  /// layer; all but two middle layers), lookahead 3. Wall time per token, base-model calls per token (the prefill's
  /// included) and the draft's acceptance; the texts are checked equal.
  static func speculativeDecoding() throws {
    let path: String
    do { path = try ModelBench.modelPath() } catch { print("speculative: skipped: \(error)"); return }
    let model = try LlamaModel(path: path)
    guard let tokenizer = model.tokenizer else { return }
    let prompts = ["The capital of France is", "Once upon a time", "def fibonacci(n):", "The three primary colors are", "Water boils at"]
      .map { tokenizer.encode($0, parseSpecial: false) }
    let drafts: [(String, LlamaModel?)] = [
      ("plain greedy", nil),
      ("speculative, droplayers(keep: 0.5)", try DropLayers(keep: .fraction(0.5)).transform(model, data: nil)),
      ("speculative, all but layers 14, 15", try DropLayers(keep: .layers(Array(0..<14) + Array(16..<30))).transform(model, data: nil)),
    ]
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").first ?? "?"
    print("\nlathe-bench: speculative decoding, SmolLM2 (q4_1), 64 greedy tokens after 5 prompts, lookahead 3, \(model.threads) threads, load \(load)")
    print("case".padding(toLength: 40, withPad: " ", startingAt: 0) + "   ms/token   base calls/token   acceptance   same text")
    var reference: [[Int]] = []
    for (name, draft) in drafts {
      var seconds = 0.0, tokens = 0, outputs: [[Int]] = []
      let strategy = try draft.map { try Speculative(draft: $0, lookahead: 3) }
      for ids in prompts {
        let (cache, logits) = try model.prefill(ids, extra: 80)
        var sampler = try Sampler()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let g: Generation
        if let strategy {
          g = try strategy.decode(model, context: ids, cache: cache, logits: logits, maxTokens: 64, sampler: &sampler, stop: [], onToken: { _, _ in }).generation
        } else {
          g = try model.decode(cache: cache, logits: logits, maxTokens: 64, sampler: &sampler)
        }
        seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        tokens += g.tokens.count
        outputs.append(g.tokens)
      }
      if draft == nil { reference = outputs }
      let calls = strategy.map { 1 / $0.totals.tokensPerBaseCall } ?? 1
      let acceptance = strategy.map { String(format: "%.3f", $0.totals.acceptance) } ?? "-"
      print(name.padding(toLength: 40, withPad: " ", startingAt: 0)
            + String(format: "%11.2f %18.3f", seconds * 1000 / Double(tokens), calls) + acceptance.leftPadded(13) + (outputs == reference ? "yes" : "NO").leftPadded(12))
    }
  }

  static func searchSpeed() throws {
    let threads = ThreadPool.shared.threadCount
    print("\nlathe-bench: SeedLM search, \(threads) threads, all 65,535 seeds")
    print("case".padding(toLength: 34, withPad: " ", startingAt: 0) + "   pairs/s   whole SmolLM2 (decoder linears)")
    for bits in [4, 3] {
      let technique = try SeedLM(bits: bits)
      let bases = try technique.bases()
      let blocks = 2048
      let values = try Tensor.randn([blocks * technique.block], seed: 1).scalars.map { $0 * 0.02 }
      let modelBlocks = 106_168_320 / technique.block
      do {
        let search = SeedSearch(bases: bases, rule: .range, seedCount: bases.count)
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = try search.run(values, blocks: blocks, threads: threads, progress: { _, _ in })
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        let pairs = Double(blocks) * Double(bases.count) / seconds
        let name = "seedlm(bits: \(bits)), \(blocks) blocks"
        print(name.padding(toLength: 34, withPad: " ", startingAt: 0)
              + String(format: "%10.3g   %.1f min", pairs, Double(modelBlocks) * Double(bases.count) / pairs / 60))
      }
    }
  }

  static let files = [(4, "smollm2-seedlm4.gguf"), (3, "smollm2-seedlm3.gguf")]

  /// Decode speed (128 greedy one-token steps from an empty cache, best of 3 after a warm-up) of the model as
  /// loaded, its f32 twin and the SeedLM models, with bytes read per step and compression time.
  static func wholeModel(compressNow: Bool) throws {
    let path: String
    do { path = try ModelBench.modelPath() } catch { print("seedlm models: skipped: \(error)"); return }
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let loaded = try LlamaModel(path: path)
    if compressNow {
      for (bits, file) in files {
        print("compressing every decoder linear at \(bits) bits ...")
        let (model, report) = try loaded.compressed(with: try SeedLM(bits: bits))
        var w = try model.ggufWriter(packed: true)
        w.set(CompressionReport.metadataKey, .string(report.json()))
        try w.write(to: "\(folder)/\(file)")
        print(String(format: "  %.1f min, wrote %@/%@", report.seconds / 60, folder, file))
      }
    }
    let f32 = try LlamaModel(gguf: try GGUFFile(bytes: try loaded.ggufWriter(type: .f32).bytes()), name: "f32")
    var rows: [(String, LlamaModel, String)] = [("q4_1 (as loaded)", loaded, "-"), ("f32 (dequantised)", f32, "-")]
    for (bits, file) in files {
      let p = "\(folder)/\(file)"
      guard FileManager.default.fileExists(atPath: p) else {
        print("seedlm(bits: \(bits)): no \(p); run notebooks/seedlm.lathe or `lathe-bench seedlm-compress` to make it")
        continue
      }
      let model = try LlamaModel(path: p, formats: Techniques.formats)
      let report = model.ggufMetadata.first { $0.0 == CompressionReport.metadataKey }?.1.string.flatMap(CompressionReport.init(json:))
      let minutes = report.map { String(format: "%.1f (%.0f s)", $0.seconds / 60, $0.seconds) } ?? "?"
      rows.append(("seedlm(bits: \(bits))", model, minutes))
    }
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").first ?? "?"
    print("\nlathe-bench: whole SmolLM2 models, decode \(ModelBench.decodeLength) tokens, best of 3, load average \(load)")
    print("model".padding(toLength: 20, withPad: " ", startingAt: 0)
          + "  linears bits/w  MB read/token  compress min       tok/s 1 thread  tok/s 2 threads")
    for (name, model, minutes) in rows {
      var linearBytes = 0, linearWeights = 0
      for layer in model.layers { for (_, w) in layer.matrices { linearBytes += w.byteCount; linearWeights += w.count } }
      var speeds: [Double] = []
      for threads in [1, 2] {
        model.threads = threads
        let (t, _) = try ModelBench.best(3) {
          let cache = try model.makeCache(capacity: ModelBench.decodeLength)
          return try ModelBench.timed {
            var token = 1
            for _ in 0..<ModelBench.decodeLength { token = ModelBench.argmax(try model.forward([token], cache: cache)) }
          }
        }
        speeds.append(Double(ModelBench.decodeLength) / t)
      }
      print(name.padding(toLength: 20, withPad: " ", startingAt: 0)
            + String(format: "  %14.3f  %13.1f  ", Double(linearBytes * 8) / Double(linearWeights), Double(model.bytesReadPerToken) / 1e6)
            + minutes.padding(toLength: 16, withPad: " ", startingAt: 0)
            + String(format: "  %15.1f  %15.1f", speeds[0], speeds[1]))
    }
  }
}

extension String {
  func leftPadded(_ width: Int) -> String { String(repeating: " ", count: Swift.max(0, width - count)) + self }
}
