// Compression techniques as values: each compressor turns one dense weight matrix into a CompressedMatrix that the
// model runs in its packed form. `compress(model, technique)` (LatheBuiltins) applies one to the chosen layers.

import LatheModels
import LatheTensor

public protocol MatrixCompressor: CustomStringConvertible, Sendable {
  /// The constructor call with every parameter spelled out, as the language prints it:
  /// `rtn(bits: 4, group: 32)`, `seedlm(bits: 4, block: 8, coeffs: 3, lfsr: 16, exponent: "range")`.
  var description: String { get }
  /// Bits per weight the packed form takes (exact: everything stored, scales and seeds included).
  var bitsPerWeight: Double { get }
  /// Compresses a dense matrix [rows, cols] (any dtype; read as f32). `progress(done, total)` is called as work
  /// completes and may throw to stop (Ctrl-C).
  func compress(_ matrix: Tensor, progress: (Int, Int) throws -> Void) throws -> any CompressedMatrix
}
