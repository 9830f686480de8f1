// Export+Ipynb: a session as a Jupyter notebook (nbformat 4.5), written with JSONSerialization.
import Foundation

extension NotebookRenderer {
  func renderIpynb(session: SessionRecord?, items: [RenderItem]) throws -> String {
    var ids = Jupyter.CellIDs()
    var cells: [[String: Any]] = []
    for item in items {
      switch item {
      case .prose(let cell):
        cells.append(["cell_type": cell.kind == .markdown ? "markdown" : "raw", "id": ids.make(cell.id),
                      "metadata": [String: Any](), "source": Jupyter.lines(cell.source)])
      case .code(let code):
        var metadata: [String: Any] = [:]
        if !code.tags.isEmpty { metadata["tags"] = code.tags }   // nbformat's cell tags
        if let run = code.run {
          var lathe: [String: Any] = ["run_id": run.id, "status": run.status.rawValue]
          if let wall = run.wallNs { lathe["wall_ns"] = wall }
          if let cpu = run.cpuNs { lathe["cpu_ns"] = cpu }
          if !code.metrics.isEmpty {
            lathe["metrics"] = code.metrics.map { ["key": $0.key, "step": $0.step, "value": Jupyter.number($0.value)] }
          }
          metadata["lathe"] = lathe
        }
        cells.append(["cell_type": "code", "id": ids.make(code.id), "metadata": metadata,
                      "source": Jupyter.lines(code.source),
                      "execution_count": code.run.map { $0.seq as Any } ?? NSNull(),
                      "outputs": code.run.map(Jupyter.outputs) ?? []])
      }
    }
    var metadata: [String: Any] = [
      "kernelspec": ["name": "lathe", "display_name": "Lathe", "language": "lathe"],
      "language_info": ["name": "lathe", "file_extension": ".lathe", "mimetype": "text/x-lathe"],
    ]
    if let session {
      var lathe: [String: Any] = ["session_id": session.id, "mode": session.mode.rawValue,
                                  "status": session.status.rawValue, "started_at": session.startedAt]
      if let seed = session.seed { lathe["seed"] = seed }
      metadata["lathe"] = lathe
    }
    if let title = try notebook.meta("title") { metadata["title"] = title }
    let document: [String: Any] = ["cells": cells, "metadata": metadata, "nbformat": 4, "nbformat_minor": 5]
    let data = try JSONSerialization.data(withJSONObject: document,
                                          options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    return String(decoding: data, as: UTF8.self) + "\n"
  }
}

enum Jupyter {
  /// nbformat's multiline string: lines that keep their "\n", the last one without.
  static func lines(_ text: String) -> [String] {
    var parts = PercentScript.splitLines(text)
    guard let last = parts.popLast() else { return [] }
    parts = parts.map { $0 + "\n" }
    if !last.isEmpty { parts.append(last) }
    return parts
  }

  /// JSON has no NaN or infinity: those become null.
  static func number(_ value: Double) -> Any { value.isFinite ? value : NSNull() }

  /// A run's outputs: consecutive stream pieces become one stream output (stderr, warning and progress go to
  /// stderr); results become execute_result, displays display_data, errors error.
  static func outputs(_ run: RunRecord) -> [[String: Any]] {
    var outputs: [[String: Any]] = [], stream: (name: String, text: String)? = nil
    func endStream() {
      if let current = stream {
        outputs.append(["output_type": "stream", "name": current.name, "text": lines(current.text)])
      }
      stream = nil
    }
    for group in OutputGroup.grouping(run.outputs) {
      let text = group.plainText ?? group.alternatives[0].text
      switch group.kind {
      case .stdout, .stderr, .warning, .progress:
        let name = group.kind == .stdout ? "stdout" : "stderr"
        var piece = group.kind == .warning && !text.hasPrefix("warning") ? "warning: " + text : text
        if group.kind == .warning || group.kind == .progress, piece.utf8.last != UInt8(ascii: "\n") { piece += "\n" }
        if let current = stream, current.name == name {
          stream?.text += piece
        } else {
          endStream()
          stream = (name, piece)
        }
      case .result:
        endStream()
        outputs.append(["output_type": "execute_result", "execution_count": run.seq, "data": bundle(group),
                        "metadata": [String: Any]()])
      case .display:
        endStream()
        outputs.append(["output_type": "display_data", "data": bundle(group), "metadata": [String: Any]()])
      case .error:
        endStream()
        let traceback = PercentScript.splitLines(text)
        let first = traceback.first { !$0.isEmpty } ?? text
        outputs.append(["output_type": "error", "ename": "LatheError", "evalue": first, "traceback": traceback])
      }
    }
    endStream()
    return outputs
  }

  private static func bundle(_ group: OutputGroup) -> [String: Any] {
    var data: [String: Any] = [:]
    for alternative in group.alternatives { data[alternative.mime] = lines(alternative.text) }
    return data
  }

  /// nbformat cell ids: 1 to 64 of [a-zA-Z0-9-_], unique in the notebook.
  struct CellIDs {
    private var used = Set<String>()

    mutating func make(_ candidate: String) -> String {
      let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
      var base = String(candidate.map { allowed.contains($0) ? $0 : "-" }.prefix(56))
      if base.isEmpty { base = "cell" }
      var id = base, counter = 2
      while used.contains(id) {
        id = "\(base)-\(counter)"
        counter += 1
      }
      used.insert(id)
      return id
    }
  }
}
