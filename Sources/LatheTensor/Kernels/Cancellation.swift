// Ctrl-C for long kernels: the language's interrupt flag, which kernels poll between tiles (a matmul between row
// blocks, a convolution between images). LatheTensor sits below the language, so the layer that knows both hands
// the flag down (Builtins.standard()).

public enum Cancellation {
  /// The process's interrupt flag (SIGINT sets it to nonzero); nil until the language sets it.
  nonisolated(unsafe) public static var flag: UnsafeMutablePointer<Int32>?

  /// Whether Ctrl-C was pressed (the flag stays set): parallel tasks that cannot throw skip their work on it.
  public static var requested: Bool { (flag?.pointee ?? 0) != 0 }

  /// Throws `TensorError.interrupted` (and clears the flag, as the interpreter does) when Ctrl-C was pressed.
  @inline(__always) public static func check(_ op: String) throws {
    if let flag, flag.pointee != 0 {
      flag.pointee = 0
      throw TensorError.interrupted(op: op)
    }
  }
}
