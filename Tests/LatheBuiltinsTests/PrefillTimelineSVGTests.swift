// The prefill Gantt chart: well-formed SVG with one bar per segment in its kind's colour, a legend, a time axis in
// ms and a title; the terminal form; errors for timelines that cannot be drawn.

import Foundation
import Testing
import LatheLang
@testable import LatheBuiltins
import LatheTechniques

/// A simulated 3-process KV-Runahead prefill on slow links, so that every kind of segment appears.
func sampleTimeline() throws -> PrefillTimeline {
  let costs = RunaheadCosts(layers: 3, kvBytesPerToken: 1536, prePerToken: 2e-6, attentionPerEntry: 2e-9,
                            postPerToken: 4e-6, head: 1e-4, bandwidth: 1e9)
  return try RunaheadSimulator(costs: costs).runahead(chunks: [500, 300, 200]).timeline
}

@Test func timelineSVGDrawsEverySegmentInItsKindsColour() throws {
  let timeline = try sampleTimeline()
  let svg = try timeline.svg(title: "KVR <p = 3>")
  let parsed = ParsedSVG(svg)
  #expect(parsed.failure == nil)
  #expect(parsed.named("title").first?.text == "KVR <p = 3>")
  // The bars: every rect after the background, frame and legend swatches belongs to a segment.
  let segments = timeline.processes.joined().filter { $0.end > $0.start }
  let colours = [PrefillTimeline.Segment.Kind.compute: "#1f77b4", .wait: "#d62728", .send: "#2ca02c"]
  for (kind, colour) in colours {
    #expect(segments.contains { $0.kind == kind })
    let drawn = svg.components(separatedBy: "<g class=\"\(kind.rawValue)\" fill=\"\(colour)\">\n").dropFirst()
      .map { $0.components(separatedBy: "</g>")[0].components(separatedBy: "<rect ").count - 1 }.reduce(0, +)
    #expect(drawn == segments.filter { $0.kind == kind }.count)
  }
  let texts = parsed.named("text").map(\.text)
  for label in ["proc 0", "proc 1", "proc 2", "compute", "wait", "send", "time (ms)"] { #expect(texts.contains(label)) }
  #expect(try sampleTimeline().svg(title: "KVR <p = 3>") == svg)           // deterministic
}

@Test func timelineSVGPlacesSegmentsOnTheTimeAxis() throws {
  // One process computing from 0 to 2 ms and 2 to 4 ms: the axis runs 0 to 4 ms and the second bar starts halfway.
  let timeline = PrefillTimeline(processes: [[.init(.compute, layer: 0, start: 0, end: 0.002),
                                               .init(.compute, layer: 1, start: 0.002, end: 0.004)]])
  let parsed = ParsedSVG(try timeline.svg(title: "", width: 400))
  let bars = parsed.named("rect").filter { $0.attributes["height"] == "13" }
  let xs = bars.compactMap { $0.attributes["x"].flatMap(Double.init) }
  #expect(xs.count == 2)
  let frame = try #require(parsed.named("rect").first { $0.attributes["fill"] == "none" })
  let left = try #require(frame.attributes["x"].flatMap(Double.init)), width = try #require(frame.attributes["width"].flatMap(Double.init))
  #expect(abs(xs[0] - left) < 0.1 && abs(xs[1] - (left + width / 2)) < 0.1)
  #expect(parsed.named("text").map(\.text).contains("4"))
}

@Test func timelineTextShowsABarAndTotalsPerProcess() throws {
  let text = try sampleTimeline().text(columns: 20)
  let lines = text.split(separator: "\n")
  #expect(lines.count == 4 && lines[0].hasPrefix("proc 0 │█") && lines[2].contains("wait"))
  #expect(lines[1].contains("░"))                                             // process 1 waits for process 0
}

@Test func timelineRejectsWhatCannotBeDrawn() {
  #expect(throws: LatheError.self) { try PrefillTimeline(processes: []).svg() }
  #expect(throws: LatheError.self) { try PrefillTimeline(processes: [[]]).svg() }
  #expect(throws: LatheError.self) {
    try PrefillTimeline(processes: [[.init(.compute, layer: 0, start: 0, end: .infinity)]]).svg()
  }
  #expect(throws: LatheError.self) {
    try PrefillTimeline(processes: [[.init(.compute, layer: 0, start: 0, end: 1)]]).svg(width: 10)
  }
}
