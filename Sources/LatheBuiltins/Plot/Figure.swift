// Figure: one chart's data and options (line, scatter or bar), checked and reduced to drawable points.

import Foundation
import LatheLang

/// One chart: series of (x, y) points drawn as lines, dots or bars, with a title, axis labels and a log-y option.
/// `svg()` and `text()` render it; both are deterministic (the same figure gives the same bytes).
///
///     let svg = try Figure(.line, series: [.init(name: "loss", ys: [2.3, 1.1, 0.7])], title: "loss").svg()
public struct Figure {
  public enum Kind: String, Sendable { case line, scatter, bar }

  public struct Series {
    public var name: String
    public var xs: [Double]
    public var ys: [Double]
    public init(name: String, xs: [Double], ys: [Double]) { self.name = name; self.xs = xs; self.ys = ys }
    /// A series at x = 0, 1, 2, ...
    public init(name: String, ys: [Double]) { self.init(name: name, xs: ys.indices.map(Double.init), ys: ys) }
  }

  public var kind: Kind
  public var series: [Series]
  /// Bar charts: one label per value of the single series.
  public var categories: [String]
  public var title: String, xLabel: String, yLabel: String
  public var logY: Bool
  /// The SVG's size in pixels.
  public var width: Int, height: Int
  /// The builtin's name, which begins every error message ("plot: y is empty").
  public var name: String
  /// What messages call the y data: "y", or "values" for bar and curve.
  public var yName = "y"

  /// Points past this many (all series together) are an error: a plot is for looking at, not for storage.
  public static let maxPoints = 10_000_000
  /// Bars past this many are an error: each one is an element of the SVG and a line of text.
  public static let maxBars = 10_000

  public init(_ kind: Kind, series: [Series], categories: [String] = [], title: String = "", xLabel: String = "",
              yLabel: String = "", logY: Bool = false, width: Int = 640, height: Int = 400, name: String = "plot") {
    self.kind = kind; self.series = series; self.categories = categories
    self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.logY = logY
    self.width = width; self.height = height; self.name = name
    if kind == .bar { yName = "values" }
  }

  /// A point in data coordinates.
  struct Point: Equatable { var x: Double, y: Double }

  /// What the renderers draw: each series as runs of consecutive drawable points (a NaN, an infinity, or a
  /// value ≤ 0 on a log axis is skipped and splits a line there), and the data's extent.
  struct Layout {
    var runs: [[[Point]]]
    var xMin: Double, xMax: Double, yMin: Double, yMax: Double
  }

  func error(_ message: String) -> LatheError { LatheError("\(name): \(message)") }

  /// The name of the data in messages: "y" or "series 2 of y".
  private func dataName(_ i: Int) -> String { series.count == 1 ? yName : "series \(i + 1) of \(yName)" }

  /// Checks the data and options and keeps the drawable points.
  func layout() throws -> Layout {
    guard (200...10_000).contains(width), (150...10_000).contains(height) else {
      throw error("a figure of \(width)×\(height) pixels is out of range (200...10000 × 150...10000)")
    }
    guard !series.isEmpty else { throw error("there is no data to plot") }
    if kind == .bar {
      guard series.count == 1 else { throw error("a bar chart takes one series, got \(series.count)") }
      guard !logY else { throw error("a bar chart has no log scale") }
      guard categories.count <= Figure.maxBars else {
        throw error("\(categories.count) bars are too many to draw (the limit is \(Figure.maxBars))")
      }
      guard categories.count == series[0].ys.count else {
        throw error("labels has \(categories.count) names but \(yName) has \(series[0].ys.count)")
      }
    }
    var total = 0
    for (i, s) in series.enumerated() {
      guard !s.ys.isEmpty else { throw error("\(dataName(i)) is empty") }
      guard s.xs.count == s.ys.count else {
        throw error("x has \(s.xs.count) value\(s.xs.count == 1 ? "" : "s") but \(dataName(i)) has \(s.ys.count)")
      }
      total += s.ys.count
      guard total <= Figure.maxPoints else { throw error("too many points to plot (the limit is \(Figure.maxPoints))") }
    }
    var runs: [[[Point]]] = []
    var xMin = Double.infinity, xMax = -Double.infinity, yMin = Double.infinity, yMax = -Double.infinity
    for s in series {
      var seriesRuns: [[Point]] = [], run: [Point] = []
      for (x, y) in zip(s.xs, s.ys) {
        guard x.isFinite, y.isFinite, !logY || y > 0 else {
          if !run.isEmpty { seriesRuns.append(run); run = [] }
          continue
        }
        run.append(Point(x: x, y: y))
        xMin = min(xMin, x); xMax = max(xMax, x); yMin = min(yMin, y); yMax = max(yMax, y)
      }
      if !run.isEmpty { seriesRuns.append(run) }
      runs.append(seriesRuns)
    }
    guard yMin <= yMax else {
      if logY { throw error("logy needs positive y values, and \(yName) has none") }
      throw error("\(yName) has no finite values (all are NaN or infinite)")
    }
    guard max(abs(xMin), abs(xMax), abs(yMin), abs(yMax)) <= 1e300 else {
      throw error("values beyond ±1e300 cannot be plotted")
    }
    if kind == .bar { yMin = min(yMin, 0); yMax = max(yMax, 0) }
    return Layout(runs: runs, xMin: xMin, xMax: xMax, yMin: yMin, yMax: yMax)
  }

  /// Series names for a legend: the given ones, else "series 1", "series 2", ...
  var seriesNames: [String] {
    series.enumerated().map { i, s in s.name.isEmpty ? "series \(i + 1)" : s.name }
  }
}
