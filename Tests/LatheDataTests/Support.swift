// Helpers for the data tests: the real files' paths, shelling out to gzip, writing scratch files.

import Foundation
import LatheData
import Testing

enum RealFiles {
  static let fashionMNIST = Datasets.systemFashionMNISTDirectory
  static var haveFashionMNIST: Bool { FileManager.default.fileExists(atPath: fashionMNIST + "/t10k-labels-idx1-ubyte.gz") }
  static var haveCSVs: Bool { (try? Datasets.locate("digits.csv.gz")) != nil && (try? Datasets.locate("mnist_5k.csv.gz")) != nil }
}

/// Runs `/usr/bin/gzip` (or another tool) with `arguments`, feeding `input`; returns its stdout.
func runTool(_ tool: String, _ arguments: [String], input: [UInt8] = []) throws -> [UInt8] {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: tool)
  p.arguments = arguments
  let inPipe = Pipe(), outPipe = Pipe()
  p.standardInput = inPipe
  p.standardOutput = outPipe
  try p.run()
  final class Box: @unchecked Sendable { var data = Data() }
  let box = Box()
  let group = DispatchGroup()
  group.enter()
  DispatchQueue.global().async { box.data = outPipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
  inPipe.fileHandleForWriting.write(Data(input))
  try inPipe.fileHandleForWriting.close()
  group.wait()
  p.waitUntilExit()
  return [UInt8](box.data)
}

/// Seconds `body` takes, printed with `label` so test logs carry load times.
func timed<T>(_ label: String, _ body: () throws -> T) rethrows -> T {
  let clock = ContinuousClock()
  let start = clock.now
  let result = try body()
  let elapsed = clock.now - start
  let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
  print("timing: \(label): \(String(format: "%.3f", seconds)) s")
  return result
}

/// Expects `body` to throw a DataError whose text contains every one of `fragments`.
func expectDataError(containing fragments: [String], sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Void) {
  do {
    try body()
    Issue.record("expected a DataError containing \(fragments), but nothing was thrown", sourceLocation: sourceLocation)
  } catch let error as DataError {
    for f in fragments where !error.description.contains(f) {
      Issue.record("\"\(error)\" does not contain \"\(f)\"", sourceLocation: sourceLocation)
    }
  } catch {
    Issue.record("expected a DataError, got \(error)", sourceLocation: sourceLocation)
  }
}
