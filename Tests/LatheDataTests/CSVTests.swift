// CSV: numeric tables parse exactly, and a bad field is reported with its line and column.

import LatheData
import Testing

@Test func csvParsesIntegersDecimalsAndLineEndings() throws {
  let text = "1,2,3\n-4, 5.5 ,6e2\r\n\n7,8,9"                  // CRLF, a blank line, no final newline
  let t = try CSV.numbers(bytes: Array(text.utf8), path: "t.csv")
  #expect(t.rowCount == 3 && t.columnCount == 3)
  #expect(t.values == [1, 2, 3, -4, 5.5, 600, 7, 8, 9])
  let withHeader = try CSV.numbers(bytes: Array("a,b\n1,2\n".utf8), path: "h.csv", skipHeader: true)
  #expect(withHeader.rowCount == 1 && withHeader.values == [1, 2])
  #expect(try CSV.numbers(bytes: [], path: "empty.csv").rowCount == 0)
}

@Test func csvNamesTheBadField() {
  expectDataError(containing: ["t.csv", "line 2, column 3", "'x7' is not a number"]) {
    _ = try CSV.numbers(bytes: Array("1,2,3\n4,5,x7\n".utf8), path: "t.csv")
  }
  expectDataError(containing: ["line 1, column 2", "empty"]) { _ = try CSV.numbers(bytes: Array("1,,3\n".utf8), path: "t.csv") }
  expectDataError(containing: ["line 1, column 3", "empty"]) { _ = try CSV.numbers(bytes: Array("1,2,\n".utf8), path: "t.csv") }
  expectDataError(containing: ["line 3", "2 columns", "the first row has 3"]) {
    _ = try CSV.numbers(bytes: Array("1,2,3\n4,5,6\n7,8\n".utf8), path: "t.csv")
  }
  expectDataError(containing: ["line 1, column 1", "header"]) {
    _ = try CSV.numbers(bytes: Array("pixel0,label\n".utf8), path: "t.csv")
  }
  expectDataError(containing: ["'nan'"]) { _ = try CSV.numbers(bytes: Array("nan\n".utf8), path: "t.csv") }
}

@Test func tablesBecomeDatasetsWithPixelAndLabelChecks() throws {
  let t = try CSV.numbers(bytes: Array("0,16,8,4,3\n16,0,0,16,9\n".utf8), path: "d.csv")
  let d = try Datasets.dataset(from: t, name: "tiny", path: "d.csv", height: 2, width: 2, pixelMax: 16, classCount: 10)
  #expect(d.count == 2 && d.imageShape == [1, 2, 2])
  #expect(d.images.scalars == [0, 1, 0.5, 0.25, 1, 0, 0, 1])
  #expect(d.labels.scalars == [3, 9])
  expectDataError(containing: ["d.csv", "columns", "expected 10"]) {
    _ = try Datasets.dataset(from: t, name: "x", path: "d.csv", height: 3, width: 3, pixelMax: 16, classCount: 10)
  }
  let badLabel = try CSV.numbers(bytes: Array("0,0,0,0,10\n".utf8), path: "l.csv")
  expectDataError(containing: ["l.csv", "row 1, column 5 (label)", "0..<10"]) {
    _ = try Datasets.dataset(from: badLabel, name: "x", path: "l.csv", height: 2, width: 2, pixelMax: 16, classCount: 10)
  }
  let badPixel = try CSV.numbers(bytes: Array("0,17,0,0,1\n".utf8), path: "p.csv")
  expectDataError(containing: ["p.csv", "row 1, column 2", "17.0"]) {
    _ = try Datasets.dataset(from: badPixel, name: "x", path: "p.csv", height: 2, width: 2, pixelMax: 16, classCount: 10)
  }
}
