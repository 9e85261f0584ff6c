// Matrix multiply through OpenBLAS (row-major cblas_sgemm); OpenBLAS runs its own thread pool.
#include <cblas.h>

#include <cstdlib>
#include <string>

#include "common.h"

extern "C" {
char* openblas_get_corename(void);
char* openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace klear {
namespace {

// OpenBLAS core names whose kernels predate AVX2: on an AVX-512 machine they mean OpenBLAS did not
// recognise the CPU, and klear's own AVX-512 sgemm is several times faster.
bool BlasCoreIsLegacy() {
  std::string core = openblas_get_corename();
  for (const char* c : {"Prescott", "prescott", "Core2", "core2", "Penryn", "penryn", "Dunnington", "Nehalem",
                        "nehalem", "Atom", "atom", "Katmai", "Coppermine", "Northwood", "Banias", "Barcelona",
                        "Opteron", "Bobcat", "Sandybridge", "sandybridge", "Generic", "generic"})
    if (core == c) return true;
  return false;
}

// KLEAR_GEMM=openblas|avx512 forces a choice (for benchmarks and tests); otherwise auto as above.
bool UseOwnGemm() {
  static int choice = -1;
  if (choice < 0) {
    const char* env = std::getenv("KLEAR_GEMM");
    std::string want = env ? env : "auto";
    if (want == "openblas")
      choice = 0;
    else if (want == "avx512")
      choice = OwnGemmAvailable() ? 1 : 0;
    else
      choice = OwnGemmAvailable() && BlasCoreIsLegacy() ? 1 : 0;
  }
  return choice == 1;
}

// Elements a row-major rows×cols operand with leading dimension ld spans (0 when empty).
int64_t Span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

// gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): C = alpha*op(A)*op(B) + beta*C
Napi::Value Gemm(const Napi::CallbackInfo& i) {
  Args a(i, "gemm");
  const bool tA = Bool(i[0]), tB = Bool(i[1]);
  const int64_t M = a.Dim(2, "m"), N = a.Dim(3, "n"), K = a.Dim(4, "k");
  const int64_t lda = a.Dim(7, "lda"), ldb = a.Dim(9, "ldb"), ldc = a.Dim(12, "ldc");
  // Stored shapes: A is M×K (K×M transposed), B is K×N (N×K transposed), C is M×N.
  const int64_t aRows = tA ? K : M, aCols = tA ? M : K, bRows = tB ? N : K, bCols = tB ? K : N;
  if (!a.failed() && M > 0 && N > 0 && K > 0 && (lda < aCols || ldb < bCols))
    a.Reject("a leading dimension is smaller than its operand's row (lda " + std::to_string(lda) + " < " +
             std::to_string(aCols) + " or ldb " + std::to_string(ldb) + " < " + std::to_string(bCols) + ")");
  if (!a.failed() && M > 0 && N > 0 && ldc < N)
    a.Reject("ldc " + std::to_string(ldc) + " is smaller than n " + std::to_string(N));
  if (!a.failed() && (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
                      ldc > INT32_MAX))
    a.Reject("a dimension exceeds 2^31 - 1");
  const bool live = M > 0 && N > 0;
  float* A = a.F32(6, "a", live ? Span(aRows, aCols, lda) : 0);
  float* B = a.F32(8, "b", live ? Span(bRows, bCols, ldb) : 0);
  float* C = a.F32(11, "c", Span(M, N, ldc));
  if (a.failed()) return a.Fail();
  if (!live) return i.Env().Undefined();
  if (UseOwnGemm()) {
    OwnGemm(tA, tB, M, N, K, Flt(i[5]), A, lda, B, ldb, Flt(i[10]), C, ldc);
    return i.Env().Undefined();
  }
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              Flt(i[5]), A, (int)lda, B, (int)ldb, Flt(i[10]), C, (int)ldc);
  return i.Env().Undefined();
}

Napi::Value Info(const Napi::CallbackInfo& i) {
  Napi::Object o = Napi::Object::New(i.Env());
  o.Set("blasCore", std::string(openblas_get_corename()));
  o.Set("blasConfig", std::string(openblas_get_config()));
  o.Set("blasThreads", openblas_get_num_threads());
  o.Set("kernelThreads", NumThreads());
  o.Set("gemmKernel", UseOwnGemm() ? "klear-avx512" : "openblas");
  return o;
}

Napi::Value SetThreads(const Napi::CallbackInfo& i) {
  int blas = (int)Int(i[0]);
  int kernels = (int)Int(i[1]);
  if (blas > 0) openblas_set_num_threads(blas);
  if (kernels > 0) SetNumThreads(kernels);
  return i.Env().Undefined();
}

}  // namespace

bool UseOwnGemmKernels() { return UseOwnGemm(); }

void InitGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
}

}  // namespace klear
