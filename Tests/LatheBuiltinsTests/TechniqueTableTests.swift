// The technique table is the one source of the techniques' rows: every entry of Techniques.all is a builtin with the
// same labels and defaults, help and saving come from it, and no technique name is written out in the language glue.

import Foundation
import Testing
@testable import LatheBuiltins
import LatheLang
import LatheTechniques
import LatheTestSupport

@Test func registryRowsEqualTheTechniqueTable() throws {
  let registry = Builtins.standard()
  #expect(Set(Techniques.all.map(\.name)).count == Techniques.all.count)
  for entry in Techniques.all {
    let row = try #require(registry.lookup(entry.name), "no row for \(entry.name)")
    #expect(row.parameters.map(\.name) == entry.parameters.map(\.label), "\(entry.name)")
    for (spec, p) in zip(row.parameters, entry.parameters) {
      switch (spec.defaultValue, p.defaultValue) {
      case (nil, nil): break
      case (let a?, let b?): #expect(a.repr == TechniqueBuiltins.value(b).repr, "\(entry.name)(\(p.label):)")
      default: Issue.record("\(entry.name)(\(p.label):): the row and the table disagree on whether it has a default")
      }
    }
    // Help names the roles and every parameter.
    let help = Help.text(for: .function(row), name: entry.name)
    for role in entry.roles { #expect(help.contains(role.description), "\(entry.name): \(help)") }
    for p in entry.parameters { #expect(help.contains(p.label + ":"), "\(entry.name): \(p.label)") }
    #expect(!entry.example.isEmpty && !entry.doc.isEmpty)
  }
}

@Test func everyEntryMakesAValueOfItsOwnRoles() throws {
  for entry in Techniques.all where entry.parameters.allSatisfy({ $0.defaultValue != nil }) {
    let t = try entry.make([:])
    #expect(t.name == entry.name && t.roles == entry.roles)
    if entry.roles.contains(.compressor) { #expect(t is any MatrixCompressor) }
    if entry.roles.contains(.modelTransform) { #expect(t is any ModelTransform) }
    if entry.roles.contains(.prefillStrategy) { #expect(t is any PrefillStrategy) }
    if entry.roles.contains(.decodingStrategy) { #expect(t is any DecodingStrategy) }
    // What can be saved loads back equal, through the table.
    if let bytes = try Techniques.encode(t) { #expect(try Techniques.decode(bytes).description == t.description) }
    #expect(try Techniques.parse(t.description).description == t.description, "\(t)")
  }
}

/// The glue dispatches by role: no string literal equal to a technique's name appears in LatheBuiltins, LatheCLI or
/// the lathe executable.
@Test func noTechniqueNameIsWrittenOutInTheLanguageGlue() throws {
  let names = Set(Techniques.all.map(\.name))
  var files: [URL] = []
  for folder in ["Sources/LatheBuiltins", "Sources/LatheCLI", "Sources/lathe"] {
    let root = TestPaths.packageRoot.appendingPathComponent(folder)
    let walker = try #require(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil))
    for case let url as URL in walker where url.pathExtension == "swift" { files.append(url) }
  }
  #expect(files.count > 10)
  let literal = try NSRegularExpression(pattern: #""((?:[^"\\]|\\.)*)""#)
  for file in files {
    let text = try String(contentsOf: file, encoding: .utf8)
    for match in literal.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
      guard let r = Range(match.range(at: 1), in: text) else { continue }
      #expect(!names.contains(String(text[r])), "\(file.lastPathComponent) writes out \"\(text[r])\"")
    }
  }
}
