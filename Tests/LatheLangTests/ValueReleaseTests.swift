// Value.release frees nested lists and records level by level: on a test thread's ordinary stack, a value far
// deeper than any native stack goes without a crash, and a value that is still shared elsewhere is left whole.

import Testing
@testable import LatheLang

/// A list nested `depth` deep, built in Swift (no interpreter, no large stack).
private func nested(_ depth: Int, record: Bool = false) -> Value {
  var x = Value.list([])
  for i in 0..<depth { x = record ? .record(Record([("next", x), ("i", .int(i))])) : .list([x, .int(i)]) }
  return x
}

@Test(arguments: [false, true])
func releaseFreesAValueDeeperThanTheStack(record: Bool) {
  var x = nested(3_000_000, record: record)
  Value.release(&x)
  guard case .none = x else { Issue.record("release leaves none, got \(x.typeName)"); return }
}

@Test func releaseLeavesASharedValueWhole() {
  var x = nested(1_000)
  let keep = x                                           // a second owner: release must not take its levels
  Value.release(&x)
  var depth = 0, cursor = keep
  while case .list(let xs) = cursor, let first = xs.first { depth += 1; cursor = first }
  #expect(depth == 1_000)
  var last = keep
  Value.release(&last)                                    // now the only owner goes, deep as it is
}

@Test func storeReleasesTheValueItReplaces() {
  var slot = nested(3_000_000)
  Value.store(.int(7), into: &slot)
  guard case .int(7) = slot else { Issue.record("store leaves the new value, got \(slot.typeName)"); return }
  var list = [nested(3_000_000), .int(1)]
  Value.store(.none, into: &list[0])
  #expect(list.count == 2)
}
