// A packed, blocked sgemm with an AVX-512 8×32 micro-kernel. Used instead of OpenBLAS only when
// OpenBLAS runs a pre-AVX2 kernel set on an AVX-512 CPU: OpenBLAS 0.3.21 does not recognise newer
// Intel models (e.g. family 6 model 207) and falls back to its SSE3 "Prescott" kernels, several times
// slower than this. The environment's OPENBLAS_CORETYPE is never changed (see backends.md).
#include <cstdlib>
#include <vector>

#include "common.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace klear {

#ifdef __AVX512F__
namespace {

constexpr int MR = 12;
constexpr int NR = 32;
constexpr int KC = 256;
constexpr int MC = 120;  // a multiple of MR: PackA writes whole MR-row panels
constexpr int NC = 512;

struct Op {
  bool trans;
  const float* p;
  int64_t ld;
  inline float at(int64_t r, int64_t c) const { return trans ? p[c * ld + r] : p[r * ld + c]; }
};

// Ap[k*MR + i] = alpha * A(i0+i, p0+k), rows past m zero-filled.
static void PackA(const Op& A, int64_t i0, int64_t m, int64_t p0, int64_t kc, float alpha, float* Ap) {
  for (int64_t ir = 0; ir < m; ir += MR) {
    int64_t mr = m - ir < MR ? m - ir : MR;
    float* dst = Ap + ir * kc;
    if (!A.trans) {
      for (int64_t i = 0; i < MR; i++) {
        if (i < mr) {
          const float* src = A.p + (i0 + ir + i) * A.ld + p0;
          for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = alpha * src[k];
        } else {
          for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0;
        }
      }
    } else {
      for (int64_t k = 0; k < kc; k++) {
        const float* src = A.p + (p0 + k) * A.ld + i0 + ir;
        for (int64_t i = 0; i < MR; i++) dst[k * MR + i] = i < mr ? alpha * src[i] : 0.0f;
      }
    }
  }
}

// Bp[k*NR + j] = B(p0+k, j0+j), columns past n zero-filled.
static void PackB(const Op& B, int64_t p0, int64_t kc, int64_t j0, int64_t n, float* Bp) {
  for (int64_t jr = 0; jr < n; jr += NR) {
    int64_t nr = n - jr < NR ? n - jr : NR;
    float* dst = Bp + jr * kc;
    if (!B.trans) {
      for (int64_t k = 0; k < kc; k++) {
        const float* src = B.p + (p0 + k) * B.ld + j0 + jr;
        float* d = dst + k * NR;
        if (nr == NR) {
          _mm512_storeu_ps(d, _mm512_loadu_ps(src));
          _mm512_storeu_ps(d + 16, _mm512_loadu_ps(src + 16));
        } else {
          for (int64_t j = 0; j < NR; j++) d[j] = j < nr ? src[j] : 0.0f;
        }
      }
    } else {
      for (int64_t j = 0; j < NR; j++) {
        if (j < nr) {
          const float* src = B.p + (j0 + jr + j) * B.ld + p0;
          for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = src[k];
        } else {
          for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = 0;
        }
      }
    }
  }
}

// C[0:mr, 0:nr] += Ap · Bp over kc: MR×32 accumulators stay in registers (2·MR of the 32 zmm).
static inline void Micro(int64_t kc, const float* Ap, const float* Bp, float* C, int64_t ldc, int64_t mr, int64_t nr) {
  __m512 acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < kc; k++) {
    const __m512 b0 = _mm512_loadu_ps(Bp + k * NR);
    const __m512 b1 = _mm512_loadu_ps(Bp + k * NR + 16);
    const float* a = Ap + k * MR;
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  if (nr == NR) {
    for (int64_t i = 0; i < mr; i++) {
      float* c = C + i * ldc;
      _mm512_storeu_ps(c, _mm512_add_ps(_mm512_loadu_ps(c), acc[i][0]));
      _mm512_storeu_ps(c + 16, _mm512_add_ps(_mm512_loadu_ps(c + 16), acc[i][1]));
    }
  } else {
    __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : ((1u << nr) - 1));
    __mmask16 m1 = (__mmask16)(nr <= 16 ? 0 : (nr >= 32 ? 0xFFFF : ((1u << (nr - 16)) - 1)));
    for (int64_t i = 0; i < mr; i++) {
      float* c = C + i * ldc;
      _mm512_mask_storeu_ps(c, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, c), acc[i][0]));
      if (m1) _mm512_mask_storeu_ps(c + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, c + 16), acc[i][1]));
    }
  }
}

// The sequential blocked product for C[m×n] += alpha·A·B, where A and B are already offset.
static void GemmBlock(const Op& A, const Op& B, int64_t M, int64_t N, int64_t K, float alpha, float* C, int64_t ldc) {
  thread_local std::vector<float> apack, bpack;
  apack.resize((size_t)((MC + MR - 1) / MR) * MR * KC);
  bpack.resize((size_t)KC * ((NC + NR - 1) / NR) * NR);
  for (int64_t jc = 0; jc < N; jc += NC) {
    int64_t nc = N - jc < NC ? N - jc : NC;
    for (int64_t pc = 0; pc < K; pc += KC) {
      int64_t kc = K - pc < KC ? K - pc : KC;
      PackB(B, pc, kc, jc, nc, bpack.data());
      for (int64_t ic = 0; ic < M; ic += MC) {
        int64_t mc = M - ic < MC ? M - ic : MC;
        PackA(A, ic, mc, pc, kc, alpha, apack.data());
        for (int64_t jr = 0; jr < nc; jr += NR) {
          int64_t nr = nc - jr < NR ? nc - jr : NR;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            int64_t mr = mc - ir < MR ? mc - ir : MR;
            Micro(kc, apack.data() + ir * kc, bpack.data() + jr * kc, C + (ic + ir) * ldc + jc + jr, ldc, mr, nr);
          }
        }
      }
    }
  }
}

// Few rows times a transposed weight (decode: C[M×N] = A[M×K]·W[N×K]ᵀ with M ≤ 32): dot products along
// contiguous K for both operands, so nothing is packed; each weight row is read once per 8 rows of A.
static void FewRowsTransB(int64_t M, int64_t j0, int64_t j1, int64_t K, float alpha, const float* A, int64_t lda,
                          const float* W, int64_t ldw, float beta, float* C, int64_t ldc) {
  const int64_t kFull = K & ~(int64_t)15;
  const __mmask16 tail = (__mmask16)((1u << (K - kFull)) - 1);
  for (int64_t j = j0; j < j1; j++) {
    const float* w = W + j * ldw;
    for (int64_t i0 = 0; i0 < M; i0 += 8) {
      const int64_t mi = M - i0 < 8 ? M - i0 : 8;
      __m512 acc[8];
      for (int r = 0; r < 8; r++) acc[r] = _mm512_setzero_ps();
      const float* a0 = A + i0 * lda;
      if (mi == 8) {
        for (int64_t k = 0; k < kFull; k += 16) {
          const __m512 wv = _mm512_loadu_ps(w + k);
#pragma GCC unroll 8
          for (int r = 0; r < 8; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + r * lda + k), wv, acc[r]);
        }
      } else {
        for (int64_t k = 0; k < kFull; k += 16) {
          const __m512 wv = _mm512_loadu_ps(w + k);
          for (int r = 0; r < mi; r++) acc[r] = _mm512_fmadd_ps(_mm512_loadu_ps(a0 + r * lda + k), wv, acc[r]);
        }
      }
      if (tail) {
        const __m512 wv = _mm512_maskz_loadu_ps(tail, w + kFull);
        for (int r = 0; r < mi; r++)
          acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a0 + r * lda + kFull), wv, acc[r]);
      }
      for (int r = 0; r < mi; r++) {
        float* c = C + (i0 + r) * ldc + j;
        const float v = alpha * _mm512_reduce_add_ps(acc[r]);
        *c = beta == 0.0f ? v : v + beta * *c;
      }
    }
  }
}

}  // namespace

bool OwnGemmAvailable() { return true; }

void OwnGemmSerial(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (beta != 1.0f) {
    for (int64_t i = 0; i < M; i++) {
      float* c = C + i * ldc;
      if (beta == 0.0f)
        std::memset(c, 0, sizeof(float) * N);
      else
        for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
  }
  if (K <= 0 || alpha == 0.0f) return;
  GemmBlock(Op{transA, A, lda}, Op{transB, B, ldb}, M, N, K, alpha, C, ldc);
}

void OwnGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (!transA && transB && M <= 32 && K > 0) {
    // Waking the pool costs more than these products gain from a second thread until they are large.
    const int64_t grain = 2.0 * M * N * K < 16e6 ? N : 64;
    ParallelFor(N, grain, [&](int64_t j0, int64_t j1) { FewRowsTransB(M, j0, j1, K, alpha, A, lda, B, ldb, beta, C, ldc); });
    return;
  }
  if (beta != 1.0f) {
    ParallelFor(M, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; i++) {
        float* c = C + i * ldc;
        if (beta == 0.0f)
          std::memset(c, 0, sizeof(float) * N);
        else
          for (int64_t j = 0; j < N; j++) c[j] *= beta;
      }
    });
  }
  if (K <= 0 || alpha == 0.0f) return;
  int threads = NumThreads();
  double flops = 2.0 * M * N * K;
  // Split rows when there are enough of them per thread, else columns (decode-sized products).
  bool splitRows = M >= 64 * threads || M >= N;
  int64_t units = splitRows ? (M + MR - 1) / MR : (N + NR - 1) / NR;
  int64_t grain = flops < 2e6 ? units : 1;
  ParallelFor(units, grain, [&](int64_t ub, int64_t ue) {
    if (splitRows) {
      int64_t i0 = ub * MR, i1 = ue * MR < M ? ue * MR : M;
      Op a{transA, transA ? A + i0 : A + i0 * lda, lda};
      Op b{transB, B, ldb};
      GemmBlock(a, b, i1 - i0, N, K, alpha, C + i0 * ldc, ldc);
    } else {
      int64_t j0 = ub * NR, j1 = ue * NR < N ? ue * NR : N;
      Op a{transA, A, lda};
      Op b{transB, transB ? B + j0 * ldb : B + j0, ldb};
      GemmBlock(a, b, M, j1 - j0, K, alpha, C + j0, ldc);
    }
  });
}

#else

bool OwnGemmAvailable() { return false; }
void OwnGemmSerial(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                   float*, int64_t) {}
void OwnGemm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float, float*,
             int64_t) {}

#endif

}  // namespace klear
