// What scripts/setup installs is there: the SmolLM2 model file the later model work reads.

import Foundation
import Testing
import LatheTestSupport

@Test func setupFetchedTheSmolLM2Model() throws {
  let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")
  guard let handle = try? FileHandle(forReadingFrom: path) else {
    Issue.record("models/SmolLM2-135M-Instruct.Q4_1.gguf is missing: run scripts/setup")
    return
  }
  defer { try? handle.close() }
  let header = try handle.read(upToCount: 8) ?? Data()
  #expect(header.prefix(4) == Data("GGUF".utf8), "not a GGUF file")
  let version = header.count == 8 ? header[4..<8].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } : 0
  #expect(version == 2 || version == 3, "GGUF version \(version)")
  let size = (try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int) ?? 0
  #expect(size > 50_000_000, "model file is only \(size) bytes")
}
