// Figures: the SVG is well-formed, escaped and deterministic with one path point per value; ticks; braille text.

import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
import LatheLang
@testable import LatheBuiltins

/// An SVG document read back with Foundation's XMLParser: every element with its attributes and text.
final class ParsedSVG: NSObject, XMLParserDelegate {
  struct Element { var name: String; var attributes: [String: String]; var text = "" }
  private(set) var elements: [Element] = []
  private(set) var failure: String?
  private var open: [Int] = []

  init(_ svg: String) {
    super.init()
    let parser = XMLParser(data: Data(svg.utf8))
    parser.delegate = self
    if !parser.parse(), failure == nil { failure = "\(parser.parserError.map { "\($0)" } ?? "parse failed")" }
  }

  func named(_ name: String) -> [Element] { elements.filter { $0.name == name } }
  /// Paths and groups drawn for data series.
  var seriesPaths: [Element] { named("path").filter { $0.attributes["class"] == "series" } }

  func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?,
              attributes: [String: String] = [:]) {
    elements.append(Element(name: elementName, attributes: attributes))
    open.append(elements.count - 1)
  }
  func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
    open.removeLast()
  }
  func parser(_ parser: XMLParser, foundCharacters string: String) {
    if let i = open.last { elements[i].text += string }
  }
  func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failure = "\(parseError)" }
}

/// The number of points a path's `d` draws: one per M or L command.
func pointCount(_ d: String) -> Int { d.filter { $0 == "M" || $0 == "L" }.count }

let sampleFigures: [Figure] = [
  Figure(.line, series: [.init(name: "train", ys: [3, 2, 1.5, 1.2]), .init(name: "val", ys: [3.2, 2.4, 2, 1.9])],
         title: "loss", xLabel: "epoch", yLabel: "cross-entropy"),
  Figure(.line, series: [.init(name: "", ys: [1, 10, 100, 1000])], logY: true),
  Figure(.scatter, series: [.init(name: "", xs: [1, 2, 3, 4], ys: [2.1, 3.9, 6.2, 7.8])], title: "fit"),
  Figure(.bar, series: [.init(name: "", ys: [4, 1.06, -0.3])], categories: ["f32", "q8_0", "a rather long label"]),
  Figure(.line, series: [.init(name: "", ys: [5, 5, 5])]),
  Figure(.scatter, series: [.init(name: "one", xs: [0], ys: [0])]),
]

@Suite struct PlotSVGTests {
  @Test(arguments: sampleFigures.indices)
  func svgIsWellFormedStaticXML(_ i: Int) throws {
    let svg = try sampleFigures[i].svg()
    let doc = ParsedSVG(svg)
    #expect(doc.failure == nil, Comment(rawValue: doc.failure ?? ""))
    #expect(doc.elements.first?.name == "svg")
    #expect(doc.elements.first?.attributes["width"] == "640" && doc.elements.first?.attributes["height"] == "400")
    let forbidden = ["script", "foreignObject", "style", "a", "use", "iframe", "image"]
    #expect(!doc.elements.contains { forbidden.contains($0.name) })
    #expect(!doc.elements.contains { $0.attributes.keys.contains { $0.lowercased().hasPrefix("on") || $0.contains("href") } })
    #expect(svg.hasPrefix("<svg"), "the notebook's HTML export inlines an SVG that starts with <svg")
  }

  @Test func sameDataGivesSameBytes() throws {
    for figure in sampleFigures {
      #expect(try figure.svg() == figure.svg())
      #expect(try figure.text() == figure.text())
    }
    let rerun = Figure(.line, series: [.init(name: "train", ys: [3, 2, 1.5, 1.2]), .init(name: "val", ys: [3.2, 2.4, 2, 1.9])],
                       title: "loss", xLabel: "epoch", yLabel: "cross-entropy")
    #expect(try rerun.svg() == sampleFigures[0].svg())
  }

  @Test func eachSeriesIsOnePathWithOnePointPerValue() throws {
    let figure = Figure(.line, series: [.init(name: "a", ys: [1, 2, 3, 4, 5]), .init(name: "b", ys: Array(repeating: 2, count: 7)),
                                        .init(name: "c", xs: [0, 1, 2], ys: [1, 0, 1])])
    let doc = ParsedSVG(try figure.svg())
    let paths = doc.seriesPaths
    #expect(paths.map { pointCount($0.attributes["d"] ?? "") } == [5, 7, 3])
    #expect(Set(paths.compactMap { $0.attributes["stroke"] }).count == 3, "each series has its own colour")
    let legend = doc.named("text").map(\.text)
    #expect(legend.contains("a") && legend.contains("b") && legend.contains("c"))
  }

  @Test func nonFiniteValuesAreSkippedAndSplitTheLine() throws {
    let figure = Figure(.line, series: [.init(name: "", ys: [1, 2, .nan, 4, .infinity, 6, 7])])
    let d = try #require(ParsedSVG(try figure.svg()).seriesPaths.first?.attributes["d"])
    #expect(pointCount(d) == 5)
    #expect(d.filter { $0 == "M" }.count == 3, "a gap starts a new subpath: [1, 2], [4], [6, 7]")
    let log = Figure(.line, series: [.init(name: "", ys: [0, 1, 10, -5, 100])], logY: true)
    #expect(pointCount(try #require(ParsedSVG(try log.svg()).seriesPaths.first?.attributes["d"])) == 3)
  }

  @Test func scatterAndBarDrawOneMarkPerValue() throws {
    let scatter = ParsedSVG(try sampleFigures[2].svg())
    #expect(scatter.named("circle").count == 4)
    let bars = ParsedSVG(try sampleFigures[3].svg())
    let group = bars.elements.firstIndex { $0.name == "g" && $0.attributes["class"] == "series" }
    #expect(group != nil)
    let rects = bars.named("rect").filter { $0.attributes["fill"] == nil && $0.attributes["x"] != nil }
    #expect(rects.count == 3)
    #expect(bars.named("text").contains { $0.text == "q8_0" })
    #expect(rects.allSatisfy { Double($0.attributes["height"] ?? "") ?? -1 > 0 }, "negative bars grow down, height stays positive")
  }

  @Test func titlesAndLabelsAreEscaped() throws {
    let title = "a < b & \"c\" 'd' > e\u{1}"
    let figure = Figure(.line, series: [.init(name: "<x>&", ys: [1, 2]), .init(name: "y", ys: [2, 1])], title: title,
                        xLabel: "</text><script>alert(1)</script>", yLabel: "&amp;")
    let svg = try figure.svg()
    #expect(svg.contains("a &lt; b &amp; &quot;c&quot; &apos;d&apos; &gt; e\u{FFFD}"))
    #expect(!svg.contains("<script"))
    let doc = ParsedSVG(svg)
    #expect(doc.failure == nil)
    let texts = doc.named("text").map(\.text)
    #expect(texts.contains("a < b & \"c\" 'd' > e\u{FFFD}"))
    #expect(texts.contains("</text><script>alert(1)</script>"))
    #expect(texts.contains("&amp;"))
    #expect(texts.contains("<x>&"))
  }

  @Test func longLinesAreThinnedPerPixelColumn() throws {
    let n = 200_000
    let ys = (0..<n).map { sin(Double($0) / 1000) + Double($0 % 7) / 10 }
    let svg = try Figure(.line, series: [.init(name: "", ys: ys)]).svg()
    let d = try #require(ParsedSVG(svg).seriesPaths.first?.attributes["d"])
    #expect(pointCount(d) < 4 * 640, "at most first, lowest, highest and last point per pixel column")
    #expect(svg.utf8.count < 100_000)
    let column: [(Double, Double)] = [(0, 1), (0.1, 5), (0.2, 3), (0.3, -1), (0.4, 2), (1, 0)]
    #expect(Figure.thinned(column, limit: 10).map(\.1) == [1, 5, 3, -1, 2, 0], "short lines stay as they are")
    #expect(Figure.thinned(column, limit: 3).map(\.1) == [1, 5, -1, 2, 0], "column 0 keeps first, highest, lowest, last")
  }

  @Test func badDataIsAnErrorNamingWhatIsWrong() {
    func message(_ figure: Figure) -> String {
      do { _ = try figure.svg(); return "rendered" } catch { return "\(error)" }
    }
    #expect(message(Figure(.line, series: [])) == "plot: there is no data to plot")
    #expect(message(Figure(.line, series: [.init(name: "", ys: [])])) == "plot: y is empty")
    #expect(message(Figure(.scatter, series: [.init(name: "", xs: [1, 2, 3], ys: [1, 2])], name: "scatter"))
            == "scatter: x has 3 values but y has 2")
    #expect(message(Figure(.line, series: [.init(name: "", ys: [.nan, .nan])])) == "plot: y has no finite values (all are NaN or infinite)")
    #expect(message(Figure(.bar, series: [.init(name: "", ys: [1])], categories: ["a", "b"], name: "bar"))
            == "bar: labels has 2 names but values has 1")
    #expect(message(Figure(.line, series: [.init(name: "", ys: [1])], width: 10)).contains("out of range"))
  }
}

@Suite struct PlotTickTests {
  @Test(arguments: [(1.0, 5, 0.2), (0.9, 5, 0.2), (105_000.0, 5, 20_000.0), (7.0, 7, 1.0), (0.003, 6, 0.0005),
                    (1e9, 4, 2e8), (3.0, 1, 5.0)])
  func niceStepsAreOneTwoOrFiveTimesAPowerOfTen(span: Double, target: Int, expected: Double) {
    let step = Figure.niceStep(span, target: target)
    #expect(abs(step - expected) <= expected * 1e-12, "niceStep(\(span), \(target)) = \(step)")
  }

  @Test func linearTicksLieInsideTheRangeWithEvenLabels() {
    let t = Figure.linearTicks(0, 0.9, target: 5)
    #expect(t.lo == 0 && t.hi == 0.9)
    #expect(t.labels == ["0.0", "0.2", "0.4", "0.6", "0.8"])
    #expect(Figure.linearTicks(-1.05, 1.05, target: 5).labels == ["-1.0", "-0.5", "0.0", "0.5", "1.0"])
    #expect(Figure.linearTicks(0, 105_000, target: 5).labels == ["0", "20k", "40k", "60k", "80k", "100k"])
    #expect(Figure.linearTicks(1, 7, target: 6).labels == ["1", "2", "3", "4", "5", "6", "7"])
    #expect(Figure.linearTicks(0, 3e-5, target: 3).labels == ["0", "1e-5", "2e-5", "3e-5"])
    #expect(Figure.linearTicks(0, 2.5e6, target: 5).labels == ["0", "0.5M", "1.0M", "1.5M", "2.0M", "2.5M"])
  }

  @Test func constantRangesAreWidenedNotDividedByZero() {
    let t = Figure.linearTicks(5, 5, target: 5)
    #expect(t.lo < 5 && t.hi > 5 && t.values.contains { abs($0 - 5) < 1e-9 })
    let zero = Figure.linearTicks(0, 0)
    #expect(zero.lo == -1 && zero.hi == 1)
  }

  @Test func logTicksArePowersOfTen() {
    #expect(Figure.logTicks(1, 1000).values == [1, 10, 100, 1000])
    #expect(Figure.logTicks(1, 1000).labels == ["1", "10", "100", "1000"])
    #expect(Figure.logTicks(0.4, 2.5).labels == ["0.5", "1", "2"])
    #expect(Figure.logTicks(1e-12, 1e12).values.count <= 9)
    #expect(Figure.logTicks(0.52, 0.58).values.count >= 2, "inside one decade: linear ticks")
  }

  @Test(arguments: [(0.25, "0.25"), (1234, "1234"), (12_340, "12.34k"), (999_999, "1M"), (2.5e9, "2.5G"),
                    (1.5e-5, "1.5e-5"), (2e15, "2e15"), (-0.5, "-0.5"), (0, "0"), (1.0 / 3, "0.3333"),
                    (Double.nan, "nan"), (-Double.infinity, "-inf")])
  func compactNumbers(value: Double, text: String) {
    #expect(Figure.compact(value) == text)
  }
}

@Suite struct PlotTextTests {
  /// The braille characters of each plot row (the part after the axis).
  func plotRows(_ text: String, rows: Int, skip: Int) -> [[Character]] {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    return lines[skip..<(skip + rows)].map { line in Array(line.drop { !("\u{2800}"..."\u{28FF}").contains($0) }) }
  }

  @Test func brailleHasTheAskedShapeWithRangesAroundIt() throws {
    let figure = Figure(.line, series: [.init(name: "", xs: [10, 20, 30], ys: [0.5, 2, 1.5])], title: "shape")
    let text = try figure.text(columns: 30, rows: 6)
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    #expect(lines.count == 1 + 6 + 2, Comment(rawValue: text))
    #expect(lines[0].trimmingCharacters(in: .whitespaces) == "shape")
    let rows = plotRows(text, rows: 6, skip: 1)
    #expect(rows.allSatisfy { $0.count == 30 })
    #expect(lines[1].hasPrefix("  2 ┤") && lines[6].hasPrefix("0.5 ┤"), Comment(rawValue: text))
    #expect(lines[7].hasSuffix("└" + String(repeating: "─", count: 30)))
    let xRange = lines[8].split(separator: " ")
    #expect(xRange == ["10", "30"])
  }

  @Test func aRisingLineGoesFromBottomLeftToTopRight() throws {
    let text = try Figure(.line, series: [.init(name: "", ys: Array(0..<50).map(Double.init))]).text(columns: 20, rows: 5)
    let rows = plotRows(text, rows: 5, skip: 0)
    let blank: Character = "\u{2800}"
    #expect(rows[0].last != blank && rows[0].first == blank, Comment(rawValue: text))
    #expect(rows[4].first != blank && rows[4].last == blank, Comment(rawValue: text))
    // The bottom-left dot is dot 7 (bit 0x40) of the first character: the lowest left dot.
    let corner = rows[4][0].unicodeScalars.first.map { $0.value - 0x2800 } ?? 0
    #expect(corner & 0x40 != 0)
    let top = rows[0][19].unicodeScalars.first.map { $0.value - 0x2800 } ?? 0
    #expect(top & 0x08 != 0, "the top-right dot is dot 4 (bit 0x08) of the last character")
  }

  @Test func severalSeriesAreNamedAndScatterDrawsDots() throws {
    let text = try Figure(.scatter, series: [.init(name: "a", xs: [0, 1], ys: [0, 1]), .init(name: "b", xs: [0, 1], ys: [1, 0])])
      .text(columns: 10, rows: 3)
    #expect(text.hasSuffix("series: a, b"))
    let dots = text.unicodeScalars.filter { (0x2801...0x28FF).contains($0.value) }
      .map { ($0.value - 0x2800).nonzeroBitCount }.reduce(0, +)
    #expect(dots == 4, Comment(rawValue: text))
  }

  @Test func barsAreBlockCharactersScaledToTheLargest() throws {
    let figure = Figure(.bar, series: [.init(name: "", ys: [4, 1, 2])], categories: ["f32", "q8", "q4"], title: "bytes")
    let lines = try figure.text(columns: 40).split(separator: "\n").map(String.init)
    #expect(lines.count == 4)
    func length(_ line: String) -> Int { line.filter { "█▏▎▍▌▋▊▉".contains($0) }.count }
    #expect(lines[1].hasPrefix("f32 │█") && lines[1].hasSuffix(" 4"))
    #expect(length(lines[1]) > length(lines[3]) && length(lines[3]) > length(lines[2]))
  }
}

@Suite struct PlotBuiltinTests {
  @Test func plotDisplaysSVGAndBrailleAndReturnsNone() throws {
    let interp = Interpreter(registry: Builtins.standard(), seed: 1)
    defer { interp.shutdown() }
    final class Shown: @unchecked Sendable { var displays: [[(mime: String, text: String)]] = [] }
    let shown = Shown()
    interp.displayHandler = { shown.displays.append($0) }
    let result = try interp.run("plot([1, 4, 9], title: \"sq\")\nplot([1, 4, 9], title: \"sq\")\ncurve({loss: [2, 1]})")
    if let result { if case .none = result {} else { Issue.record("curve returned \(result)") } }
    #expect(shown.displays.count == 3)
    #expect(shown.displays[0].map(\.mime) == ["image/svg+xml", "text/plain"])
    #expect(shown.displays[0][0].text == shown.displays[1][0].text, "deterministic across calls")
    #expect(shown.displays[0][1].text.contains("sq") && shown.displays[0][1].text.hasSuffix("\n"))
    #expect(shown.displays[2][0].text.contains("<title>loss</title>"))
  }
}
