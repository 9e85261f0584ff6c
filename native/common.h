// Shared helpers for the klear native kernels: argument unpacking, a small persistent thread pool
// and a vectorisable exp. Every kernel family lives in its own .cc and registers itself in addon.cc.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

namespace klear {

inline float* F32(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  return v.As<Napi::Float32Array>().Data();
}
inline int32_t* I32(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  return v.As<Napi::Int32Array>().Data();
}
inline int64_t Int(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
inline float Flt(const Napi::Value& v) { return v.As<Napi::Number>().FloatValue(); }
inline double Dbl(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
inline bool Bool(const Napi::Value& v) { return v.ToBoolean().Value(); }

// Runs fn(begin, end) over [0, n) split into contiguous chunks across the pool (the calling thread
// takes one chunk). Work below `grain` units per thread runs inline: waking a thread costs microseconds.
void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
int NumThreads();
void SetNumThreads(int n);

// exp(x) to ~2 ulp for x in [-87, 88]; plain arithmetic so loops using it vectorise (no libm call).
static inline float FastExp(float x) {
  x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
  const float log2e = 1.44269504088896341f;
  float fx = x * log2e;
  float n = __builtin_floorf(fx + 0.5f);
  // Cody-Waite split of ln2 keeps r accurate.
  float r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = (int32_t)n + 127;
  // A bit cast, not a union: a union is a memory object and stops GCC from vectorising callers.
  return p * __builtin_bit_cast(float, e << 23);
}

// The AVX-512 sgemm fallback (sgemm_avx512.cc); available only when compiled for AVX-512.
bool OwnGemmAvailable();
void OwnGemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
             const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same on the calling thread only (for products inside an already parallel kernel).
void OwnGemmSerial(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                   const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Whether gemm (and the attention kernels built on it) use the AVX-512 sgemm rather than OpenBLAS.
bool UseOwnGemmKernels();

void InitGemm(Napi::Env env, Napi::Object exports);
void InitNorms(Napi::Env env, Napi::Object exports);
void InitRope(Napi::Env env, Napi::Object exports);
void InitAttention(Napi::Env env, Napi::Object exports);
void InitElementwise(Napi::Env env, Napi::Object exports);
void InitLoss(Napi::Env env, Napi::Object exports);
void InitOptimizer(Napi::Env env, Napi::Object exports);

}  // namespace klear
