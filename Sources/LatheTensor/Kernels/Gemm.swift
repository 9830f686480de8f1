// C = α·op(A)·op(B) + β·C on raw row-major buffers, through cblas_sgemm (one call, no checks: callers check).

import CBLAS

enum Gemm {
  /// Row-major: op(A) is [m, k], op(B) is [k, n], C is [m, n] with leading dimension ldc.
  @inline(__always)
  static func multiply(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                       _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                       _ c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
  }
}
