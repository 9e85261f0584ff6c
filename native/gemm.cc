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

// gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): C = alpha*op(A)*op(B) + beta*C
Napi::Value Gemm(const Napi::CallbackInfo& i) {
  if (UseOwnGemm()) {
    OwnGemm(Bool(i[0]), Bool(i[1]), Int(i[2]), Int(i[3]), Int(i[4]), Flt(i[5]), F32(i[6]), Int(i[7]), F32(i[8]),
            Int(i[9]), Flt(i[10]), F32(i[11]), Int(i[12]));
    return i.Env().Undefined();
  }
  cblas_sgemm(CblasRowMajor, Bool(i[0]) ? CblasTrans : CblasNoTrans, Bool(i[1]) ? CblasTrans : CblasNoTrans,
              (int)Int(i[2]), (int)Int(i[3]), (int)Int(i[4]), Flt(i[5]), F32(i[6]), (int)Int(i[7]), F32(i[8]),
              (int)Int(i[9]), Flt(i[10]), F32(i[11]), (int)Int(i[12]));
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
