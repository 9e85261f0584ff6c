// Matrix multiply through OpenBLAS (row-major cblas_sgemm); OpenBLAS runs its own thread pool.
#include <cblas.h>

#include "common.h"

extern "C" {
char* openblas_get_corename(void);
char* openblas_get_config(void);
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace klear {
namespace {

// gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): C = alpha*op(A)*op(B) + beta*C
Napi::Value Gemm(const Napi::CallbackInfo& i) {
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

void InitGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
}

}  // namespace klear
