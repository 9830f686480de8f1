// ReplValueTests: what the REPL prints for a cell's value (a streamed value is not echoed twice) and `:vars`.

import Foundation
import LatheLang
import LatheNotebook
import LatheTestSupport
import Testing
@testable import LatheCLI

/// Keeps everything a session or command shows.
final class CollectingDisplay: SessionDisplay {
  var text = ""
  func write(_ text: String, error: Bool) { self.text += text }
}

/// A value whose text was written to stdout as it was made, like a generation.
final class StreamedText: HostObject {
  let text: String
  init(_ text: String) { self.text = text }
  var typeName: String { "streamed" }
  var description: String { text }
  var echoesAsValue: Bool { false }
}

@Suite struct ReplValueTests {
  func session(_ notebook: Notebook? = nil) throws -> (Session, CollectingDisplay) {
    let display = CollectingDisplay()
    let session = try Session(notebook: notebook, mode: .repl, seed: 0, display: display)
    // say(text): streams the text, then returns it as a value that opts out of the echo.
    session.interpreter.define("say", .function(Function(native: "say", parameters: [ParameterSpec("text")]) { c in
      let text = try c.string(0)
      c.interpreter.output(.stdout, text + "\n")
      return .host(StreamedText(text))
    }))
    return (session, display)
  }

  @Test func aStreamedValueIsNotEchoedAgainButAlaterLineShowsIt() throws {
    let notebook = try Notebook.open(path: ":memory:")
    let (s, out) = try session(notebook)
    let first = s.execute("say(\"The capital of France is Paris.\")")
    #expect(out.text == "The capital of France is Paris.\n")
    #expect(first.result != nil, "the value is still the cell's result")
    let run = try #require(try first.runID.flatMap { try notebook.run(id: $0) })
    #expect(run.outputs.map(\.kind) == [.stdout], "recorded once, as the stream")

    out.text = ""
    s.execute("let g = say(\"again\")")
    #expect(out.text == "again\n")
    for line in ["g", "print(g)"] {
      out.text = ""
      s.execute(line)
      #expect(out.text == "again\n", "\(line) on a later line shows the value: \(out.text)")
    }
    // Streamed text that is not the value's own: the value echoes.
    out.text = ""
    s.execute("let h = say(\"one\")\nprint(\"something else\")\nh")
    #expect(out.text == "one\nsomething else\none\n")
  }

  @Test func varsShowsTypesShapesAndParameterCounts() throws {
    let (s, out) = try session()
    let repl = REPL(session: s, historyPath: "/dev/null")
    for line in ["let n = 3", "let w = randn([3, 4], seed: 1)", "let net = mlp([64, 10], seed: 1)",
                 "let q = compress(net, rtn(bits: 4, group: 32))", "let p = net.parameters[0]", "let words = [\"a\", \"b\"]"] {
      #expect(s.execute(line).status == .ok, "\(line): \(out.text)")
    }
    out.text = ""
    repl.handle(":vars")
    let lines = out.text.split(separator: "\n").map(String.init)
    #expect(lines.contains("n = 3"))
    #expect(lines.contains("w: tensor f32 [3, 4]"))
    #expect(lines.contains("net: model 650 params"))
    #expect(lines.contains { $0.hasPrefix("q: model ") && $0.contains("compressed: rtn(bits: 4, group: 32)") }, "\(lines)")
    #expect(lines.contains("p: tensor f32 [10, 64], requires grad"), "\(lines)")
    #expect(lines.contains("words = [\"a\", \"b\"]"))
  }
}
