// GGUF metadata values: the thirteen value types of the format, with typed conveniences for reading them.

/// One GGUF metadata value, keeping the exact type the file stores (so a copy writes the same types back).
///
///     file.metadata["tokenizer.ggml.bos_token_id"]?.int     // 1, whatever integer type the file used
public enum GGUFValue: Equatable, Sendable {
  case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), uint64(UInt64), int64(Int64)
  case float32(Float), float64(Double), bool(Bool), string(String), array([GGUFValue])

  public var string: String? { if case .string(let s) = self { return s } else { return nil } }
  public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }

  /// The value of any integer type, when it fits in Int.
  public var int: Int? {
    switch self {
    case .uint8(let v): return Int(v)
    case .int8(let v): return Int(v)
    case .uint16(let v): return Int(v)
    case .int16(let v): return Int(v)
    case .uint32(let v): return Int(v)
    case .int32(let v): return Int(v)
    case .uint64(let v): return Int(exactly: v)
    case .int64(let v): return Int(exactly: v)
    default: return nil
    }
  }

  /// The value of any numeric type (integers and floats) as a Double.
  public var double: Double? {
    switch self {
    case .float32(let v): return Double(v)
    case .float64(let v): return v
    case .uint64(let v): return Double(v)
    case .int64(let v): return Double(v)
    default: return int.map(Double.init)
    }
  }

  public var array: [GGUFValue]? { if case .array(let a) = self { return a } else { return nil } }
  /// An array whose every element is a string.
  public var strings: [String]? { elements(\.string) }
  /// An array whose every element is an integer that fits in Int.
  public var ints: [Int]? { elements(\.int) }
  /// An array whose every element is numeric.
  public var doubles: [Double]? { elements(\.double) }

  private func elements<T>(_ get: (GGUFValue) -> T?) -> [T]? {
    guard case .array(let values) = self else { return nil }
    var out: [T] = []
    out.reserveCapacity(values.count)
    for v in values { guard let x = get(v) else { return nil }; out.append(x) }
    return out
  }

  /// GGUF's value type id: 0 uint8, 1 int8, 2 uint16, 3 int16, 4 uint32, 5 int32, 6 float32, 7 bool, 8 string,
  /// 9 array, 10 uint64, 11 int64, 12 float64.
  public var typeID: UInt32 {
    switch self {
    case .uint8: return 0
    case .int8: return 1
    case .uint16: return 2
    case .int16: return 3
    case .uint32: return 4
    case .int32: return 5
    case .float32: return 6
    case .bool: return 7
    case .string: return 8
    case .array: return 9
    case .uint64: return 10
    case .int64: return 11
    case .float64: return 12
    }
  }

  /// The name of a value type id, for messages ("uint32", "array").
  static func typeName(_ id: UInt32) -> String {
    let names = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string", "array", "uint64",
                 "int64", "float64"]
    return id < names.count ? names[Int(id)] : "type \(id)"
  }
}
