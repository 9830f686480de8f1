// SmolLM2 in a REPL session: generate and chat print their text once (streamed, not echoed again as the value),
// and `:vars` names a model's size and a compressed one's technique. Release pass only.

import Foundation
import LatheLang
import LatheTestSupport
import Testing
@testable import LatheCLI

@Suite(.serialized) struct ModelReplReleaseTests {
  @Test(.enabled(if: FileManager.default.fileExists(atPath: ModelVariantsReleaseTests.model), "models/ has no SmolLM2 file: run scripts/setup"))
  func generationIsShownOnceAndVarsNamesTheTechnique() throws {
    let display = CollectingDisplay()
    let session = try Session(notebook: nil, mode: .repl, seed: 0, display: display)
    defer { session.close() }
    #expect(session.execute("let m = load(\"\(ModelVariantsReleaseTests.model)\")").status == .ok, "\(display.text)")
    for cell in ["generate(m, \"The capital of France is\", tokens: 6)", "chat(m, \"What is the capital of France?\", tokens: 8)"] {
      display.text = ""
      let outcome = session.execute(cell)
      guard case .host(let generation)? = outcome.result else { Issue.record("\(cell): no generation"); continue }
      #expect(!generation.description.isEmpty)
      #expect(display.text == generation.description + "\n", "\(cell) showed: \(display.text.debugDescription)")
    }
    #expect(session.execute("let g = generate(m, \"Once upon a time\", tokens: 4, stream: false)").status == .ok)
    display.text = ""
    session.execute("g")
    #expect(display.text.count > 1, "a generation that did not stream is echoed")

    #expect(session.execute("let q = compress(m, rtn(bits: 4, group: 64), layers: [0])").status == .ok, "\(display.text)")
    display.text = ""
    REPL(session: session, historyPath: "/dev/null").handle(":vars")
    let lines = display.text.split(separator: "\n").map(String.init)
    #expect(lines.contains { $0.hasPrefix("m: llm ") && $0.hasSuffix("M params") }, "\(lines)")
    #expect(lines.contains { $0.hasPrefix("q: llm ") && $0.hasSuffix("M params, compressed: rtn(bits: 4, group: 64)") }, "\(lines)")
    #expect(lines.contains("g: generation of 4 tokens"), "\(lines)")
  }
}
