// Compression figures: SeedLM's exhaustive seed search in (block, seed) pairs per second on Gaussian blocks, the
// time that projects to for every decoder linear of SmolLM2 (13,271,040 blocks at 4 bits, 8,847,360 at 3), the
// search's own speed only; the decode figures of a SeedLM model are still to come.

import Foundation
import LatheModels
import LatheTechniques
import LatheTensor

enum TechniqueBench {
  static func run(filter: String?) throws {
    guard filter.map({ "seedlm compress".contains($0) || $0.contains("seedlm") }) ?? true else { return }
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
}
