// sqlpairs(n:, seed:): question + table schema -> SQL pairs in the style of the SQL-context task Speculative Streaming
// is measured on, drawn from a seed (no data file: the pairs are the templates' own). Six tables, eleven question
// forms (three phrasings each) over their columns and values; each pair's message is the schema and the question, its
// answer the query.

import LatheTensor

public struct SQLPair: Sendable, Equatable {
  public var question: String, schema: String, sql: String
  /// What the user says: the schema, then the question.
  public var message: String { "Tables: \(schema)\nQuestion: \(question)" }
}

public enum SQLPairs {
  struct Column {
    let name: String, words: String, numeric: Bool, values: [String]
  }
  struct Table {
    let name: String, noun: String, columns: [Column]
    var schema: String {
      "CREATE TABLE \(name) (" + columns.map { "\($0.name) \($0.numeric ? "INTEGER" : "VARCHAR")" }.joined(separator: ", ") + ")"
    }
    var text: [Column] { columns.filter { !$0.numeric } }
    var numbers: [Column] { columns.filter(\.numeric) }
  }

  static let cities = ["Boston", "Denver", "Austin", "Seattle", "Chicago", "Miami", "Dallas", "Portland", "Atlanta", "Phoenix"]
  static let people = ["Alice", "Bruno", "Chen", "Dana", "Emil", "Fatima", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena"]
  static func numbers(_ range: ClosedRange<Int>, by step: Int) -> [String] { stride(from: range.lowerBound, through: range.upperBound, by: step).map(String.init) }

  static let tables: [Table] = [
    Table(name: "employees", noun: "employees", columns: [
      Column(name: "name", words: "name", numeric: false, values: people),
      Column(name: "department", words: "department", numeric: false, values: ["sales", "research", "finance", "legal", "support"]),
      Column(name: "city", words: "city", numeric: false, values: cities),
      Column(name: "salary", words: "salary", numeric: true, values: numbers(30_000...120_000, by: 5_000)),
      Column(name: "age", words: "age", numeric: true, values: numbers(20...65, by: 1))]),
    Table(name: "products", noun: "products", columns: [
      Column(name: "title", words: "title", numeric: false, values: ["lamp", "desk", "chair", "kettle", "mirror", "shelf", "rug", "clock"]),
      Column(name: "category", words: "category", numeric: false, values: ["kitchen", "office", "garden", "bedroom", "bath"]),
      Column(name: "price", words: "price", numeric: true, values: numbers(5...500, by: 5)),
      Column(name: "stock", words: "stock", numeric: true, values: numbers(0...200, by: 10))]),
    Table(name: "students", noun: "students", columns: [
      Column(name: "name", words: "name", numeric: false, values: people),
      Column(name: "major", words: "major", numeric: false, values: ["physics", "history", "biology", "music", "economics", "art"]),
      Column(name: "year", words: "year", numeric: true, values: numbers(1...4, by: 1)),
      Column(name: "credits", words: "credits", numeric: true, values: numbers(0...160, by: 4))]),
    Table(name: "flights", noun: "flights", columns: [
      Column(name: "airline", words: "airline", numeric: false, values: ["Delta", "United", "Alaska", "JetBlue", "Frontier", "Spirit"]),
      Column(name: "origin", words: "origin", numeric: false, values: cities),
      Column(name: "destination", words: "destination", numeric: false, values: cities),
      Column(name: "distance", words: "distance", numeric: true, values: numbers(200...3_000, by: 100))]),
    Table(name: "movies", noun: "movies", columns: [
      Column(name: "title", words: "title", numeric: false, values: ["Arrival", "Heat", "Up", "Alien", "Fargo", "Rocky", "Jaws", "Amelie"]),
      Column(name: "director", words: "director", numeric: false, values: ["Villeneuve", "Mann", "Docter", "Scott", "Coen", "Avildsen", "Spielberg"]),
      Column(name: "release_year", words: "release year", numeric: true, values: numbers(1970...2023, by: 1)),
      Column(name: "rating", words: "rating", numeric: true, values: numbers(1...10, by: 1))]),
    Table(name: "stores", noun: "stores", columns: [
      Column(name: "store_name", words: "store name", numeric: false, values: ["North", "Central", "Harbor", "Hilltop", "Riverside", "Plaza"]),
      Column(name: "city", words: "city", numeric: false, values: cities),
      Column(name: "employees", words: "number of employees", numeric: true, values: numbers(3...80, by: 1)),
      Column(name: "revenue", words: "revenue", numeric: true, values: numbers(10_000...900_000, by: 10_000))]),
  ]

  /// The number of question forms.
  public static let formCount = 11

  /// One pair of form `form` on `table`, its columns and values drawn from `random`.
  static func pair(table t: Table, form: Int, _ random: inout SeededGenerator) -> SQLPair {
    let text = random.pick(t.text), other = random.pick(t.text.count > 1 ? t.text.filter { $0.name != text.name } : t.text)
    let number = random.pick(t.numbers)
    let value = random.pick(other.values), limit = random.pick(number.values)
    let T = t.noun, x = text.words, o = other.words, k = number.words
    // Each form: its phrasings (one drawn) and its query.
    let (phrasings, sql): ([String], String)
    switch form {
    case 0: (phrasings, sql) = (["What are the \(x)s of all \(T)?", "List every \(x) in the \(T) table.", "Give the \(x) of each of the \(T)."],
                                "SELECT \(text.name) FROM \(t.name)")
    case 1: (phrasings, sql) = (["How many \(T) are there?", "Count the \(T).", "What is the number of \(T)?"], "SELECT COUNT(*) FROM \(t.name)")
    case 2: (phrasings, sql) = (["List the \(x) of \(T) whose \(o) is \(value).", "Which \(T) have \(o) \(value)? Give their \(x).",
                                 "Show the \(x) for \(T) with \(o) equal to \(value)."],
                                "SELECT \(text.name) FROM \(t.name) WHERE \(other.name) = '\(value)'")
    case 3: (phrasings, sql) = (["How many \(T) have a \(k) greater than \(limit)?", "Count the \(T) with \(k) above \(limit).",
                                 "What is the number of \(T) whose \(k) exceeds \(limit)?"],
                                "SELECT COUNT(*) FROM \(t.name) WHERE \(number.name) > \(limit)")
    case 4: (phrasings, sql) = (["What is the average \(k) of \(T)?", "Find the mean \(k) over all \(T).", "Give the average \(k) of the \(T)."],
                                "SELECT AVG(\(number.name)) FROM \(t.name)")
    case 5: (phrasings, sql) = (["What is the highest \(k) among \(T) whose \(o) is \(value)?",
                                 "Find the maximum \(k) of \(T) with \(o) \(value).", "Among \(T) with \(o) \(value), what is the largest \(k)?"],
                                "SELECT MAX(\(number.name)) FROM \(t.name) WHERE \(other.name) = '\(value)'")
    case 6: (phrasings, sql) = (["Show the \(x) and \(k) of all \(T), ordered by \(k) from high to low.",
                                 "List \(T) by \(k) in descending order with their \(x).", "Give each \(x) and \(k), largest \(k) first."],
                                "SELECT \(text.name), \(number.name) FROM \(t.name) ORDER BY \(number.name) DESC")
    case 7: (phrasings, sql) = (["What is the \(k) of the \(T) with \(o) \(value)?", "Give the \(k) of \(T) whose \(o) is \(value).",
                                 "Find the \(k) for the \(T) where \(o) is \(value)."],
                                "SELECT \(number.name) FROM \(t.name) WHERE \(other.name) = '\(value)'")
    case 8: (phrasings, sql) = (["For each \(o), how many \(T) are there?", "Count the \(T) in each \(o).", "How many \(T) does each \(o) have?"],
                                "SELECT \(other.name), COUNT(*) FROM \(t.name) GROUP BY \(other.name)")
    case 9: (phrasings, sql) = (["Which \(x) has the lowest \(k)?", "Give the \(x) of the \(T) with the smallest \(k).",
                                 "What is the \(x) of the \(T) whose \(k) is lowest?"],
                                "SELECT \(text.name) FROM \(t.name) ORDER BY \(number.name) ASC LIMIT 1")
    default: (phrasings, sql) = (["List the distinct \(o) values of \(T) with \(k) below \(limit).",
                                  "Which different \(o) values appear among \(T) whose \(k) is under \(limit)?",
                                  "Give each \(o) once for \(T) with \(k) less than \(limit)."],
                                 "SELECT DISTINCT \(other.name) FROM \(t.name) WHERE \(number.name) < \(limit)")
    }
    let question = random.pick(phrasings)
    return SQLPair(question: question, schema: t.schema, sql: sql)
  }

  /// `n` distinct pairs (no question and schema twice) drawn from `seed`; the same seed gives the same pairs.
  ///
  ///     let pairs = try SQLPairs.generate(n: 3000, seed: 0)     // pairs[0].sql: "SELECT ..."
  public static func generate(n: Int, seed: UInt64) throws -> [SQLPair] {
    guard n >= 1, n <= 100_000 else { throw DataError.invalidArgument(op: "sqlpairs", reason: "n must be 1 to 100000, got \(n)") }
    var random = SeededGenerator(seed: seed &+ 0x5351_4C50)
    var seen = Set<String>(), out: [SQLPair] = []
    var tries = 0
    while out.count < n {
      tries += 1
      guard tries <= 50 * n + 10_000 else {
        throw DataError.invalidArgument(op: "sqlpairs", reason: "only \(out.count) distinct pairs exist in the templates, asked for \(n)")
      }
      let p = pair(table: random.pick(tables), form: random.below(formCount), &random)
      if seen.insert(p.message).inserted { out.append(p) }
    }
    return out
  }

  /// The seeded split: a permutation of the pairs, ⌈test·n⌉ (at least 1) of them to test, each part in draw order.
  public static func split(_ pairs: [SQLPair], test: Double, seed: UInt64) throws -> (train: [SQLPair], test: [SQLPair]) {
    let (train, held) = try Corpus.split(documentCount: pairs.count, test: test, seed: seed)
    return (train.map { pairs[$0] }, held.map { pairs[$0] })
  }
}
