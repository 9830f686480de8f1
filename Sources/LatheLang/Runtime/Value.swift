// Values of the language: scalars, strings, lists, records, ranges, functions and host objects.

/// A Lathe value. Lists and records have value semantics (copy on write), as Swift's arrays do.
public enum Value {
  case none
  case bool(Bool)
  case int(Int)
  case float(Double)
  case string(String)
  case list([Value])
  case record(Record)
  case range(RangeValue)
  case function(Function)
  /// Tensors, models, techniques, datasets: objects of the layers above, registered through `HostObject`.
  case host(any HostObject)

  public var typeName: String {
    switch self {
    case .none: return "none"
    case .bool: return "bool"
    case .int: return "int"
    case .float: return "float"
    case .string: return "string"
    case .list: return "list"
    case .record: return "record"
    case .range: return "range"
    case .function: return "function"
    case .host(let h): return h.typeName
    }
  }
}

/// Fields in the order they were written: `{bits: 4, name: "q"}`.
public struct Record {
  public var fields: [(name: String, value: Value)]
  public init(_ fields: [(name: String, value: Value)] = []) { self.fields = fields }

  public subscript(name: String) -> Value? {
    get { fields.first(where: { $0.name == name })?.value }
    set {
      if let i = fields.firstIndex(where: { $0.name == name }) {
        if let newValue { Value.store(newValue, into: &fields[i].value) } else { var old = fields.remove(at: i).value; Value.release(&old) }
      } else if let newValue {
        fields.append((name, newValue))
      }
    }
  }
  public var names: [String] { fields.map(\.name) }
}

/// `a..<b`, `a...b` and `range(a, b, step)`: integers from `start` up to (not including) `end`.
public final class RangeValue {
  public let start: Int, end: Int, step: Int
  public init(start: Int, end: Int, step: Int) { self.start = start; self.end = end; self.step = step }
  /// The number of elements, computed without overflow for any bounds (capped at Int.max).
  public var count: Int {
    if step > 0 {
      guard start < end else { return 0 }
      let distance = UInt(bitPattern: end &- start)       // the true distance fits in UInt
      return Int(min(UInt(Int.max), (distance - 1) / UInt(step) + 1))
    }
    guard start > end else { return 0 }
    let distance = UInt(bitPattern: start &- end)
    return Int(min(UInt(Int.max), (distance - 1) / step.magnitude + 1))
  }
  /// Whether `i` is one of the elements.
  public func contains(_ i: Int) -> Bool {
    if step > 0 { return i >= start && i < end && UInt(bitPattern: i &- start) % UInt(step) == 0 }
    return i <= start && i > end && UInt(bitPattern: start &- i) % step.magnitude == 0
  }
  /// Element `i` (0 ≤ i < count): wrapping arithmetic gives the exact value, which lies between the bounds.
  public func element(_ i: Int) -> Int { start &+ i &* step }
}

/// An object of a layer above the language (a tensor, a model, a technique).
///
/// Every requirement has a default, so a host type implements only what it supports; the rest are clear errors.
public protocol HostObject: AnyObject {
  /// The name shown in errors and by `type(x)`: "tensor", "model".
  var typeName: String { get }
  /// What the REPL prints.
  var description: String { get }
  /// A member `x.name`, or nil when there is none.
  func member(_ name: String) throws -> Value?
  /// Names offered by tab completion after `x.`.
  var memberNames: [String] { get }
  /// `x op other` (or `other op x` when `hostOnLeft` is false); nil means "not supported".
  func binary(_ op: BinaryOperator, _ other: Value, hostOnLeft: Bool) throws -> Value?
  func unary(_ op: UnaryOperator) throws -> Value?
  /// `x[items]`.
  func index(_ items: [IndexValue]) throws -> Value
  /// `x[items] = value`; returns the updated object (which may be a copy).
  func setIndex(_ items: [IndexValue], to value: Value) throws -> Value
  func isEqual(to other: any HostObject) -> Bool
  /// Bytes and a kind for `save(name, x)`; nil when the object cannot be saved.
  func serialized() throws -> (kind: String, bytes: [UInt8])?
  /// The object as one number, where that makes sense (a one-element tensor); builtins taking a number accept it.
  var numericValue: Double? { get }
  /// The object as the condition of `if`, `while`, `&&`, `||`, `!` and `assert`: nil when it cannot be one; a
  /// thrown error when it is ambiguous (a mask of several elements).
  func conditionValue() throws -> Bool?
  /// One line for the REPL's `:vars`: the type and what tells two values of it apart (`tensor f32 [576, 1536]`,
  /// `llm SmolLM2 134.5M params, compressed: rtn(bits: 4)`). Default: `typeName`.
  var summary: String { get }
  /// False when `description` was already written to the output as the object was made (a streamed generation):
  /// the REPL then does not print it again as the value of the cell that made it. Default: true.
  var echoesAsValue: Bool { get }
}

extension HostObject {
  public func member(_ name: String) throws -> Value? { nil }
  public var memberNames: [String] { [] }
  public func binary(_ op: BinaryOperator, _ other: Value, hostOnLeft: Bool) throws -> Value? { nil }
  public func unary(_ op: UnaryOperator) throws -> Value? { nil }
  public func index(_ items: [IndexValue]) throws -> Value {
    throw LatheError("\(typeName) cannot be indexed")
  }
  public func setIndex(_ items: [IndexValue], to value: Value) throws -> Value {
    throw LatheError("\(typeName) does not support item assignment")
  }
  public func isEqual(to other: any HostObject) -> Bool { self === other }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? { nil }
  public var numericValue: Double? { nil }
  public func conditionValue() throws -> Bool? { nil }
  public var summary: String { typeName }
  public var echoesAsValue: Bool { true }
}

extension Value {
  /// A bool, or a host object that stands for one (a one-element mask); nil for anything else.
  /// The condition value, with anything that is not one (or is ambiguous) as false.
  public var conditionValueOrFalse: Bool { ((try? conditionValue()) ?? nil) ?? false }

  public func conditionValue() throws -> Bool? {
    switch self {
    case .bool(let b): return b
    case .host(let h): return try h.conditionValue()
    default: return nil
    }
  }
}

/// A host object that `sum`, `mean`, `max` and `min` reduce (a tensor, along an axis or over everything).
public protocol ReducibleHostObject: HostObject {
  /// `op` is "sum", "mean", "max" or "min".
  func reduced(_ op: String, axis: Int?, keepdims: Bool) throws -> Value
}

/// One evaluated component of `x[...]`.
public enum IndexValue {
  case single(Value)
  case slice(Int?, Int?, Int?)
  case ellipsis
}

/// An unlocated runtime error thrown by builtins and value operations; the evaluator adds the location.
public struct LatheError: Error, CustomStringConvertible {
  public var message: String
  public var kind: Diagnostic.Kind
  public init(_ message: String, kind: Diagnostic.Kind = .runtime) { self.message = message; self.kind = kind }
  public var description: String { message }
}

/// A variable captured by a closure: shared by the defining frame and every closure that uses it.
final class Cell: HostObject {
  var value: Value
  init(_ value: Value) { self.value = value }
  deinit { Value.release(&value) }
  var typeName: String { "cell" }
  var description: String { "cell" }
}

extension Value {
  /// Drops `value` (leaving none) without Swift's recursive release: a list or record whose storage has no other
  /// owner gives up its nested lists and records to an explicit stack before it is freed, so a value nested
  /// millions deep is freed level by level in constant native stack. The walk visits only what is freed: a shared
  /// container is just released (its other owner keeps it), so dropping one step of a linked list costs O(1).
  /// Every place that overwrites a variable, a frame slot, a list element or a record field drops through here.
  @inline(__always)
  public static func release(_ value: inout Value) {
    switch value {
    case .list, .record: releaseContainer(&value)
    default: value = .none
    }
  }

  /// Stores `newValue` in `slot`, releasing what it held with `release`.
  @inline(__always)
  public static func store(_ newValue: Value, into slot: inout Value) {
    var old = newValue
    swap(&old, &slot)
    release(&old)
  }

  @inline(never)
  static func releaseContainer(_ value: inout Value) {
    var stack: [Value] = []
    var current = Value.none
    swap(&current, &value)
    while true {
      var items: [Value] = []
      var fields: [(name: String, value: Value)] = []
      take(&current, items: &items, fields: &fields)
      if !items.isEmpty, ownsStorage(&items) {
        items.withUnsafeMutableBufferPointer { b in
          for i in b.indices where b[i].isNonEmptyContainer {
            var child = Value.none
            swap(&child, &b[i])
            stack.append(child)
          }
        }
      }
      if !fields.isEmpty, ownsStorage(&fields) {
        fields.withUnsafeMutableBufferPointer { b in
          for i in b.indices where b[i].value.isNonEmptyContainer {
            var child = Value.none
            swap(&child, &b[i].value)
            stack.append(child)
          }
        }
      }
      items = []; fields = []                      // freed here: what is left in them holds no container
      guard let next = stack.popLast() else { return }
      current = next
    }
  }

  /// Moves the storage of a list or record out of `value` (leaving none), so that the caller holds the only
  /// reference the value had.
  private static func take(_ value: inout Value, items: inout [Value], fields: inout [(name: String, value: Value)]) {
    switch value {
    case .list(let xs): value = .none; items = xs
    case .record(let r): value = .none; fields = r.fields
    default: value = .none
    }
  }

  private var isNonEmptyContainer: Bool {
    switch self {
    case .list(let xs): return !xs.isEmpty
    case .record(let r): return !r.fields.isEmpty
    default: return false
    }
  }

  /// Whether the storage of `array` has no other owner. An array is one strong reference to its storage object
  /// (checked once below); where that ever differs, the answer is false and values are released as Swift does.
  private static func ownsStorage<T>(_ array: inout [T]) -> Bool {
    guard arrayIsOneReference else { return false }
    return withUnsafeMutableBytes(of: &array) { raw in
      guard let base = raw.baseAddress else { return false }
      return isKnownUniquelyReferenced(&base.assumingMemoryBound(to: AnyObject.self).pointee)
    }
  }

  private static let arrayIsOneReference =
    MemoryLayout<[Value]>.size == MemoryLayout<AnyObject>.size
    && MemoryLayout<[(name: String, value: Value)]>.size == MemoryLayout<AnyObject>.size
}
