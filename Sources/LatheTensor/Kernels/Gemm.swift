// C = α·op(A)·op(B) + β·C on raw row-major buffers, through cblas_sgemm (one call, no checks: callers check).

import CBLAS

enum Gemm {
  /// Row-major: op(A) is [m, k], op(B) is [k, n], C is [m, n] with leading dimension ldc.
  @inline(__always)
  static func multiply(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                       _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
                       _ c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0) {
    // A small product runs on the calling thread: waking OpenBLAS's own threads for it costs more than it saves,
    // and a woken OpenBLAS thread then spins (sched_yield) for about 0.1 s, taking a core from the pool's workers
    // (a Fashion-MNIST CNN step spent 12% of its time there, woken by the 64×1568 · 1568×10 linear layer).
    func product() {
      cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                  Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
    if m * n * k < Gemm.smallProduct { BLASThreads.single(product) } else { product() }
  }

  /// Products of fewer multiply-adds than this (8 MFLOP, about 80 µs on one core) stay on one thread.
  static let smallProduct = 1 << 22
}
