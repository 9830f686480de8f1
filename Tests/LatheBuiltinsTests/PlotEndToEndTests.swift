// End to end: a script's plot() goes through `lathe run` into the notebook, reruns identically, exports to HTML as
// an inline SVG, and (when chromium is installed) renders in a headless browser as more than a blank page.

import Foundation
import Testing
import LatheTestSupport

/// Headless chromium, when it is on PATH (scripts/setup installs Debian's `chromium`).
enum Chromium {
  static var executable: URL? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for name in ["chromium", "chromium-browser"] {
      for directory in path.split(separator: ":") {
        let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
      }
    }
    return nil
  }

  /// A PNG screenshot of `page` in an 800×600 window, or nil if chromium made none within the time limit.
  static func screenshot(_ chromium: URL, page: URL, in directory: URL, name: String) throws -> Data? {
    let png = directory.appendingPathComponent(name)
    let process = Process()
    process.executableURL = chromium
    process.arguments = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                         "--user-data-dir=\(directory.appendingPathComponent("profile-\(name)").path)",
                         "--screenshot=\(png.path)", "--window-size=800,600", page.absoluteString]
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    try process.run()
    let deadline = Date().addingTimeInterval(120)
    while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return try? Data(contentsOf: png)
  }
}

@Test func plotReachesTheNotebookAndRendersInExportedHTML() throws {
  let directory = try TestPaths.temporaryDirectory("lathe-plot")
  defer { try? FileManager.default.removeItem(at: directory) }
  let script = directory.appendingPathComponent("plots.lathe"), notebook = directory.appendingPathComponent("plots.lnb")
  let html = directory.appendingPathComponent("plots.html")
  try """
    # %%
    plot(range(5), [[1, 4, 9, 16, 25], [25, 16, 9, 4, 1]], title: "end to end", labels: ["up", "down"])

    """.write(to: script, atomically: true, encoding: .utf8)

  let run = try TestPaths.runLathe(["run", script.path, "--notebook", notebook.path])
  #expect(run.status == 0, Comment(rawValue: run.out + run.err))
  #expect(run.out.contains("end to end") && run.out.unicodeScalars.contains { (0x2801...0x28FF).contains($0.value) },
          "the terminal shows the braille rendering")
  let rerun = try TestPaths.runLathe(["rerun", notebook.path, "--check"])
  #expect(rerun.status == 0, Comment(rawValue: "rerun --check: " + rerun.out + rerun.err))
  let export = try TestPaths.runLathe(["export", notebook.path, "--to", "html", "-o", html.path])
  #expect(export.status == 0, Comment(rawValue: export.err))
  let page = try String(contentsOf: html, encoding: .utf8)
  // The plot is an SVG image (a data URI: no markup of a notebook is inlined into the page).
  let prefix = "src=\"data:image/svg+xml;base64,"
  let encoded = try #require(page.range(of: prefix).map { page[$0.upperBound...].prefix { $0 != "\"" } }, "no SVG image in the page")
  let svg = String(decoding: try #require(Data(base64Encoded: String(encoded))), as: UTF8.self)
  #expect(svg.contains("<svg") && !page.contains("<svg"), "the plot is an SVG image, not inline markup")
  #expect(svg.components(separatedBy: "class=\"series\"").count - 1 == 2)
  #expect(!page.contains("⠀"), "HTML shows the SVG, not the braille alternative")

  guard let chromium = Chromium.executable else {
    print("PlotEndToEndTests: no chromium or chromium-browser on PATH, so the screenshot check is skipped "
      + "(scripts/setup installs Debian's chromium)")
    return
  }
  // The same page without its SVG: the plot must add a good deal of drawing to the screenshot.
  let bare = directory.appendingPathComponent("bare.html")
  try page.replacingOccurrences(of: #"<img alt="output" src="data:image/svg\+xml;base64,[^"]*">"#, with: "", options: .regularExpression)
    .write(to: bare, atomically: true, encoding: .utf8)
  let withPlot = try #require(try Chromium.screenshot(chromium, page: html, in: directory, name: "plot.png"))
  let without = try #require(try Chromium.screenshot(chromium, page: bare, in: directory, name: "bare.png"))
  let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47]
  #expect(Array(withPlot.prefix(4)) == signature && Array(without.prefix(4)) == signature)
  #expect(withPlot.count > without.count + 8_000,
          "screenshot with the plot: \(withPlot.count) bytes; without it: \(without.count) bytes")
  if let keep = ProcessInfo.processInfo.environment["LATHE_PLOT_SCREENSHOT"] {
    try? withPlot.write(to: URL(fileURLWithPath: keep))
  }
}
