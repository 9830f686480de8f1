// The researcher's toolkit: "did you mean" knows other libraries' spellings, and every suggestion it can make names
// something that exists (a builtin, a label of one, or a member); Tab after `x.` offers x's own members.

import Foundation
import Testing
@testable import LatheBuiltins
@testable import LatheCLI
import LatheLang
import LatheTensor
import LatheTestSupport

/// Every name a suggestion may land on: builtin names, their labels, and the members of the host values.
func suggestableNames() throws -> Set<String> {
  let registry = Builtins.standard()
  var names = Set(registry.functions.map(\.name))
  for f in registry.functions { names.formUnion(f.parameters.map(\.name)) }
  names.formUnion(TensorValue(try Tensor.zeros([1])).memberNames)
  // Members of language models, KV caches and generations (values that need a model to make).
  names.formUnion(["kvHeads", "headDim", "layers", "dim", "heads", "vocab", "tensors", "promptTokens", "tokensPerSecond"])
  return names
}

@Test func everyAliasTargetExists() throws {
  let names = try suggestableNames()
  for (alias, targets) in Spelling.aliases {
    #expect(targets.contains { names.contains($0) }, "'\(alias)' suggests \(targets), none of which is a builtin, label or member")
  }
}

@Test func didYouMeanKnowsOtherLibrariesSpellings() {
  let sampling = ["tokens", "temperature", "topK", "topP", "seed", "stop", "stream"]
  #expect(Spelling.nearest("top_k", in: sampling) == "topK")
  #expect(Spelling.nearest("topk", in: sampling) == "topK")
  #expect(Spelling.nearest("max_new_tokens", in: sampling) == "tokens")
  #expect(Spelling.nearest("temp", in: sampling) == "temperature")
  #expect(Spelling.nearest("dim", in: ["x", "axis", "keepdims"]) == "axis")
  #expect(Spelling.nearest("keepdim", in: ["x", "axis", "keepdims"]) == "keepdims")
  #expect(Spelling.nearest("prompttokens", in: ["promptTokens", "ttft"]) == "promptTokens")
  #expect(Spelling.nearest("prompt_tokens", in: ["promptTokens", "ttft"]) == "promptTokens")
  #expect(Spelling.nearest("concatenate", in: ["concat", "stack"]) == "concat")
  #expect(Spelling.nearest("zzz", in: ["concat", "stack"]) == nil)
}

@Test func tabAfterADotOffersThatValuesMembersOnly() throws {
  let interp = Interpreter(registry: Builtins.standard())
  _ = try interp.run("let x = zeros(2, 3)\nlet r = {bits: 4, group: 64}\nlet xs = [1, 2]")
  let members = Completion.candidates(line: "x.", cursor: 2, interpreter: interp)
  #expect(members.contains("x.shape") && members.contains("x.item") && !members.contains("x.print") && members.count < 40, "\(members)")
  #expect(Completion.candidates(line: "r.", cursor: 2, interpreter: interp) == ["r.bits", "r.group"])
  #expect(Completion.candidates(line: "xs.ap", cursor: 5, interpreter: interp) == ["xs.append"])
}

@Test func questionMarkSearchesEveryBuiltinsDoc() throws {
  let interp = Interpreter(registry: Builtins.standard())
  let found = try #require(Help.query("perplex", interpreter: interp))
  #expect(found.contains("perplexity") && found.contains("builtins that mention it"), "\(found)")
  let exact = try #require(Help.query("clamp", interpreter: interp))
  #expect(exact.hasPrefix("builtin clamp(x, min: none, max: none)"), "\(exact)")
  #expect(Help.query("qqqqqqqq", interpreter: interp) == nil)
}

@Test func savedListsTheNotebooksValues() throws {
  let dir = try TestPaths.temporaryDirectory("saved")
  defer { try? FileManager.default.removeItem(at: dir) }
  let script = dir.appendingPathComponent("s.lathe")
  try "save(\"config\", {bits: 4})\nsave(\"w\", eye(2))\nsave(\"config\", {bits: 3})\nprint(map(saved(), a => a.name), map(saved(), a => a.kind))\nprint(load(\"config\"))\n"
    .write(to: script, atomically: true, encoding: .utf8)
  let r = try TestPaths.runLathe(["run", script.path, "--notebook", dir.appendingPathComponent("s.lnb").path])
  #expect(r.status == 0, "\(r.err)")
  #expect(r.out == "[\"config\", \"w\"] [\"table\", \"tensor\"]\n{bits: 3}\n", "\(r.out)")
}
