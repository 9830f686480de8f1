// Every input a fuzz target ever crashed on (Tests/FuzzRegressions/<target>/) and every target's seed files are
// replayed through the target's check by `lathe fuzz-replay`, in a process of their own under the fuzzer's budgets
// and its 10 s limit per input: a finding, a trap or a hang fails the test.

import Foundation
import Testing
import LatheTestSupport

@Test(arguments: ["lang", "gguf", "model", "tokenizer", "safetensors", "notebook", "codec", "frames", "readers"])
func fuzzRegressionsReplayWithoutFindings(target: String) throws {
  let seeds = try TestPaths.temporaryDirectory("fuzz-seeds-\(target)")
  defer { try? FileManager.default.removeItem(at: seeds) }
  let kept = TestPaths.packageRoot.appendingPathComponent("Tests/FuzzRegressions/\(target)").path
  let r = try TestPaths.runLathe(["fuzz-replay", target, "--seeds", seeds.path, kept], cwd: TestPaths.packageRoot)
  #expect(r.status == 0, "status \(r.status)\n\(r.out.suffix(2000))\n\(r.err.suffix(2000))")
  #expect(r.out.contains("fuzz-replay \(target): "), "\(r.out)")
  // The seeds were written and replayed: a target that writes none (the language's corpus is the scripts) has none.
  let written = try FileManager.default.contentsOfDirectory(atPath: seeds.path)
  #expect(target == "lang" || !written.isEmpty, "\(target) wrote no seed file")
}
