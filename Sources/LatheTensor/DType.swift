// Element types of tensors. Arithmetic runs in f32; i32 holds indices and labels (argmax, class ids).
// The packed and half types of later work (f16, bf16, i8, GGUF blocks) join this list with their kernels.

public enum DType: String, CaseIterable, Sendable, CustomStringConvertible {
  case f32, i32

  public var byteSize: Int { 4 }
  public var description: String { rawValue }
}
