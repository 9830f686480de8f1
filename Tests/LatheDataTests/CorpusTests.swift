// Text corpora: each real corpus loads with its known size and first lines, and the errors for unknown names
// and missing files.

import Foundation
import LatheData
import Testing

@Test func leeCorpusHas300ArticlesOneALine() throws {
  let text = try timed("Corpus lee") { try Corpus.text(named: "lee") }
  #expect(text.utf8.count == 360_082)
  let articles = text.split(separator: "\n", omittingEmptySubsequences: true)
  #expect(articles.count == 300)
  #expect(articles[0].hasPrefix("Hundreds of people have been forced to vacate their homes in the Southern Highlands"))
  print("corpus lee: \(text.utf8.count) bytes, \(articles.count) articles")
}

@Test func hamletIsTheMarkdownPlay() throws {
  let text = try timed("Corpus hamlet") { try Corpus.text(named: "hamlet") }
  #expect(text.utf8.count == 189_481)
  #expect(text.hasPrefix("# Hamlet\n\n## ACT I\n\n### SCENE I. Elsinore. A platform before the castle."))
  #expect(text.contains("To be, or not to be"))
}

@Test func shakespeareIsThe38PlaysInFileNameOrder() throws {
  let plays = try Corpus.plays()
  #expect(plays.count == 38)
  #expect(plays.map { URL(fileURLWithPath: $0).lastPathComponent } == plays.map { URL(fileURLWithPath: $0).lastPathComponent }.sorted())
  #expect(plays.first?.hasSuffix("a-midsummer-night-s-dream.md") == true && plays.last?.hasSuffix("two-gentlemen-of-verona.md") == true)
  let text = try timed("Corpus shakespeare") { try Corpus.text(named: "shakespeare") }
  #expect(text.utf8.count == 5_318_858 + 37)                   // the 38 files, a blank line between each two
  #expect(text.hasPrefix("# A Midsummer Night's Dream\n"))
  // Each play but measure-for-measure.md (which starts at "## ACT I") opens with its title; four also have an
  // "# EPILOGUE" or "# INTERMISSION" heading.
  let titles = text.split(separator: "\n").filter { $0.hasPrefix("# ") && $0.uppercased() != $0 }
  #expect(titles.count == 37)
  #expect(text.contains("# Macbeth\n") && text.contains("\n\n## ACT I\n\n### SCENE I. An apartment in the DUKE'S palace."))
  #expect(try #require(titles.firstIndex(of: "# Hamlet")) < (try #require(titles.firstIndex(of: "# The Tempest"))))
  #expect(titles.contains("# Edward III") && titles.last == "# Two Gentlemen of Verona")
  #expect(text.contains(try Corpus.text(named: "hamlet")))
  print("corpus shakespeare: \(text.utf8.count) bytes, \(plays.count) plays")
}

@Test func wikiIsArticleTextWithoutMarkup() throws {
  let text = try timed("Corpus wiki") { try Corpus.text(named: "wiki") }
  #expect(text.hasPrefix("Anarchism\nAnarchism is a political philosophy"))   // the first page is a redirect
  for markup in ["{{", "}}", "[[", "]]", "<ref", "</ref", "&amp;", "&nbsp;", "&lt;", "'''", "<!--", "{|", "==", "[http"] {
    #expect(!text.contains(markup), "\"\(markup)\" is left in the stripped text")
  }
  let scalars = text.unicodeScalars.filter { !$0.properties.isWhitespace }
  let letters = scalars.filter { $0.properties.isAlphabetic }.count
  let share = Double(letters) / Double(scalars.count)
  #expect(share > 0.8, "only \(share) of the non-space characters are letters")
  let articles = text.components(separatedBy: "\n\n").count
  #expect(text.utf8.count > 2_000_000 && text.utf8.count < 6_089_746)
  print("corpus wiki: \(text.utf8.count) bytes of text, \(letters) letters (\(Int(share * 100))% of non-space), \(articles) paragraphs")
}

@Test func corpusErrorsNameTheCorporaAndTheSetupScript() throws {
  expectDataError(containing: ["corpus", "unknown corpus \"bible\"", "lee, hamlet, shakespeare, wiki"]) {
    _ = try Corpus.text(named: "bible")
  }
  let empty = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-corpus-\(UUID().uuidString)").path
  try FileManager.default.createDirectory(atPath: empty + "/corpus/shakespeare", withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(atPath: empty) }
  for (name, file) in [("lee", "corpus/lee_background.cor"), ("hamlet", "corpus/shakespeare/hamlet.md"),
                       ("wiki", "corpus/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.xml")] {
    expectDataError(containing: ["cannot read data/\(file)", "run scripts/setup"]) { _ = try Corpus.text(named: name, in: [empty]) }
  }
  try "# Hamlet\n".write(toFile: empty + "/corpus/shakespeare/hamlet.md", atomically: true, encoding: .utf8)
  #expect(try Corpus.text(named: "hamlet", in: [empty]) == "# Hamlet\n")
  expectDataError(containing: ["expected the 38 plays", "found 1", "scripts/setup"]) { _ = try Corpus.text(named: "shakespeare", in: [empty]) }
  // A dump with no article (only a redirect) is an error, not an empty corpus.
  let dump = "<mediawiki><page><title>A</title><ns>0</ns><redirect title=\"B\" /><revision><text>#REDIRECT [[B]]</text></revision></page></mediawiki>"
  try dump.write(toFile: empty + "/corpus/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.xml", atomically: true, encoding: .utf8)
  expectDataError(containing: ["no articles"]) { _ = try Corpus.text(named: "wiki", in: [empty]) }
}

/// Splits by document: lee by article, shakespeare by play; no document lands in both parts, together they are
/// the whole corpus, and the seed decides which go to test.
@Test(arguments: ["lee", "shakespeare"])
func corpusSplitsNeverShareADocument(_ name: String) throws {
  let documents = try Corpus.documents(named: name)
  #expect(documents.count == (name == "lee" ? 292 : 38))
  let (train, test) = try Corpus.split(documentCount: documents.count, test: 0.1, seed: 1)
  #expect(Set(train).isDisjoint(with: test))
  #expect((train + test).sorted() == Array(0..<documents.count))
  #expect(test.count == (name == "lee" ? 30 : 4))
  #expect(Set(try Corpus.split(documentCount: documents.count, test: 0.1, seed: 2).test) != Set(test))
  // No test document's text is inside the training text.
  let trainText = train.map { documents[$0] }.joined()
  let leaked = test.filter { trainText.contains(documents[$0].trimmingCharacters(in: .whitespacesAndNewlines)) }
  #expect(leaked.isEmpty, "test documents \(leaked) are inside the training text")
}

@Test func hamletIsNotSplitInsideThePlay() {
  #expect(throws: DataError.self) { try Corpus.documents(named: "hamlet") }
  #expect(throws: DataError.self) { try Corpus.split(documentCount: 10, test: 1.5, seed: 0) }
}
