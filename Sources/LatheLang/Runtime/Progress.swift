// A progress bar for long builtins: count, rate and ETA, redrawn at most 10 times a second, only on a terminal.

import Foundation

public final class Progress {
  public let total: Int
  public let label: String
  private let interpreter: Interpreter
  private var done = 0
  private let start = DispatchTime.now().uptimeNanoseconds
  private var lastDraw: UInt64 = 0
  private var drew = false
  private var drawnCount = -1
  /// Seconds between redraws: at most 10 a second.
  public static let minimumInterval: UInt64 = 100_000_000

  /// `total` may be 0 when unknown (no bar, count and rate only).
  public init(_ interpreter: Interpreter, total: Int, label: String) {
    self.interpreter = interpreter; self.total = max(0, total); self.label = label
  }

  /// Adds `count` finished items and redraws if 100 ms have passed. Also polls Ctrl-C.
  public func advance(by count: Int = 1) throws {
    done += count
    try interpreter.checkInterrupt()
    guard interpreter.progressEnabled else { return }
    let now = DispatchTime.now().uptimeNanoseconds
    if now - lastDraw >= Progress.minimumInterval || (total > 0 && done >= total) {
      lastDraw = now
      draw(now)
    }
  }

  /// Ends the bar with its final line.
  public func finish() {
    guard interpreter.progressEnabled, drew else { return }
    if drawnCount != done { draw(DispatchTime.now().uptimeNanoseconds) }
    interpreter.output(.progress, "\n")
  }

  /// The bar's text at `now`, e.g. `train  [#########.........]  450/1000  312.5 it/s  ETA 1.8s`.
  public func line(now: UInt64) -> String {
    let elapsed = max(1e-9, Double(now - start) / 1e9)
    let rate = Double(done) / elapsed
    var text = label
    if total > 0 {
      let width = 24
      let filled = min(width, done * width / max(1, total))
      text += "  [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
      text += "  \(done)/\(total)"
    } else {
      text += "  \(done)"
    }
    text += String(format: "  %.1f it/s", rate)
    if total > 0, rate > 0, done < total { text += String(format: "  ETA %.1fs", Double(total - done) / rate) }
    else { text += String(format: "  %.1fs", elapsed) }
    return text
  }

  private func draw(_ now: UInt64) {
    drew = true
    drawnCount = done
    interpreter.output(.progress, "\r" + line(now: now) + "\u{1B}[K")
  }
}
