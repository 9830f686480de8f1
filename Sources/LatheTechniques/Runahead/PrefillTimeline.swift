// PrefillTimeline: what each process of a parallel prefill did when, layer by layer; the simulator and real runs
// fill the same shape, and `timeline(r)` draws it.

/// Per process, the intervals it spent computing, waiting for a neighbour's keys and values, and sending. Times are
/// seconds from the start of the prefill. A send overlaps the sender's compute (sends are asynchronous), so a
/// process's compute and wait segments tile its busy time while its send segments lie beside them.
///
///     let t = PrefillTimeline(processes: [[.init(.compute, layer: 0, start: 0, end: 0.002)]])
///     t.seconds(.compute, process: 0) == 0.002
public struct PrefillTimeline: Codable, Sendable, Equatable {
  public struct Segment: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case compute, wait, send }
    public var kind: Kind
    /// The decoder layer, or nil for work outside the layers (the final norm and LM head).
    public var layer: Int?
    public var start: Double, end: Double
    public init(_ kind: Kind, layer: Int?, start: Double, end: Double) {
      self.kind = kind; self.layer = layer; self.start = start; self.end = end
    }
    public var duration: Double { end - start }
  }

  /// One list per process, in process order; each list in the order the process met its segments.
  public var processes: [[Segment]]

  public init(processes: [[Segment]]) { self.processes = processes }

  /// The latest end of any segment (0 when there are none). It can pass the time to first token, which is when the
  /// last process's LM head ends: an earlier process may still be finishing its last layer then.
  public var end: Double { processes.joined().map(\.end).max() ?? 0 }

  /// Total seconds process `process` spent in segments of `kind`.
  public func seconds(_ kind: Segment.Kind, process: Int) -> Double {
    processes[process].reduce(0) { $1.kind == kind ? $0 + $1.duration : $0 }
  }
}
