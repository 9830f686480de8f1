// The frames target: arbitrary bytes on a worker's control socket (LatheParallel's FrameFuzzing holds the check,
// beside the protocol's internals).

import LatheParallel

enum FramesFuzz {
  static var seeds: [(String, [UInt8])] { FrameFuzzing.seeds.enumerated().map { ("seed-\($0.offset).frames", $0.element) } }

  static func check(_ input: [UInt8]) throws {
    do { try FrameFuzzing.check(input) } catch let finding as FrameFuzzing.Finding { throw FuzzFinding(finding.description) }
  }
}
