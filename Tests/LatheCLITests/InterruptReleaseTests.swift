// Ctrl-C during the long model computations (C.4 row 11, issue "Ctrl-C"): `lathe run` of a script that loads
// SmolLM2 and then computes a perplexity over many 512-token windows, prefills a long prompt, or generates many
// tokens stops within 250 ms of SIGINT (the forward pass checks the flag between layers), exits 1 and records the
// run as interrupted. The release `lathe` of the test build is used where it exists: the debug one is 10-50x slower
// per layer.

#if canImport(Glibc)
import Foundation
import Glibc
import LatheTestSupport
import Testing

@Suite(.serialized) struct InterruptReleaseTests {
  static var binary: URL {
    let release = TestPaths.packageRoot.appendingPathComponent(".build-release-tests/release/lathe")
    return FileManager.default.isExecutableFile(atPath: release.path) ? release : TestPaths.latheBinary
  }

  @Test(.enabled(if: FileManager.default.fileExists(atPath: ModelVariantsReleaseTests.model), "models/ has no SmolLM2 file: run scripts/setup"),
        arguments: ["let p = perplexity(m, text, window: 512)", "let p = perplexity(m, text, window: 256, stride: 128)",
                    "let p = perplexity(m, text, window: 2048)",
                    "let c = prefill(m, prompt)",
                    "let g = generate(m, \"Once upon a time\", tokens: 4000, temperature: 0.8, seed: 1)"])
  func sigintStopsModelComputationsWithinAQuarterSecond(cell: String) throws {
    let dir = try TestPaths.temporaryDirectory("interrupt-model")
    defer { try? FileManager.default.removeItem(at: dir) }
    let script = dir.appendingPathComponent("s.lathe")
    try """
      # %%
      let m = load("\(ModelVariantsReleaseTests.model)")
      let text = join(map(range(0, 1000), i => "word \\(i) of a long text"), " ")
      let prompt = join(map(range(0, 500), i => "word \\(i) of a long text"), " ")
      print("ready")
      # %%
      print("go")
      \(cell)
      # %%
      print("after")
      """.write(to: script, atomically: true, encoding: .utf8)
    var latencies: [Double] = []
    for trial in 0..<3 {
      let notebook = dir.appendingPathComponent("s\(trial).lnb")
      let p = Process()
      p.executableURL = Self.binary
      p.arguments = ["run", script.path, "--notebook", notebook.path]
      let out = Pipe(), err = Pipe()
      p.standardOutput = out; p.standardError = err
      try p.run()
      // Wait for the long cell to start (on a loaded machine the first cell's commit can take a while), then let
      // it run a while.
      var seen = Data()
      let deadline = Date().addingTimeInterval(120)
      while !String(decoding: seen, as: UTF8.self).contains("go\n"), Date() < deadline {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        seen += chunk
      }
      Thread.sleep(forTimeInterval: 0.6 + 0.2 * Double(trial))
      let sent = DispatchTime.now().uptimeNanoseconds
      kill(p.processIdentifier, SIGINT)
      p.waitUntilExit()
      latencies.append(Double(DispatchTime.now().uptimeNanoseconds - sent) / 1e6)
      let rest = String(decoding: seen + out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      #expect(p.terminationStatus == 1, "status \(p.terminationStatus): \(errors.suffix(600))")
      #expect(errors.contains("interrupted"), "\(errors.suffix(600))")
      #expect(!rest.contains("after"), "the run went on after Ctrl-C")
      let show = try TestPaths.runLathe(["show", notebook.path])
      #expect(show.out.contains("interrupted"), "\(show.out.suffix(600))")
    }
    print("Ctrl-C during \(cell): \(latencies.map { String(format: "%.0f", $0) }) ms (\(Self.binary.path))")
    #expect(latencies.max() ?? .infinity <= 250, "stop latencies \(latencies) ms")
  }
}
#endif
