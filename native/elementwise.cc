// Elementwise kernels: SwiGLU, residual adds, scaling, and the embedding gather / scatter-add.
#include <vector>

#include "common.h"

namespace klear {
namespace {

constexpr int64_t kGrain = 16384;

// swiglu(gate, up, out, n): out = silu(gate) * up
Napi::Value Swiglu(const Napi::CallbackInfo& i) {
  const float* g = F32(i[0]);
  const float* u = F32(i[1]);
  float* o = F32(i[2]);
  int64_t n = Int(i[3]);
  ParallelFor(n, kGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) {
      float sg = 1.0f / (1.0f + FastExp(-g[j]));
      o[j] = g[j] * sg * u[j];
    }
  });
  return i.Env().Undefined();
}

// swigluBackward(dOut, gate, up, dGate, dUp, n): dGate, dUp overwritten
Napi::Value SwigluBackward(const Napi::CallbackInfo& i) {
  const float* dout = F32(i[0]);
  const float* g = F32(i[1]);
  const float* u = F32(i[2]);
  float* dg = F32(i[3]);
  float* du = F32(i[4]);
  int64_t n = Int(i[5]);
  ParallelFor(n, kGrain, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) {
      float sg = 1.0f / (1.0f + FastExp(-g[j]));
      float silu = g[j] * sg;
      du[j] = dout[j] * silu;
      dg[j] = dout[j] * u[j] * sg * (1.0f + g[j] * (1.0f - sg));
    }
  });
  return i.Env().Undefined();
}

// add(dst, src, n): dst += src
Napi::Value Add(const Napi::CallbackInfo& i) {
  float* d = F32(i[0]);
  const float* s = F32(i[1]);
  int64_t n = Int(i[2]);
  ParallelFor(n, kGrain * 4, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) d[j] += s[j];
  });
  return i.Env().Undefined();
}

// scale(x, alpha, n): x *= alpha
Napi::Value Scale(const Napi::CallbackInfo& i) {
  float* x = F32(i[0]);
  float a = Flt(i[1]);
  int64_t n = Int(i[2]);
  ParallelFor(n, kGrain * 4, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) x[j] *= a;
  });
  return i.Env().Undefined();
}

// embedding(table, ids, out, rows, dim): out[r] = table[ids[r]]
Napi::Value Embedding(const Napi::CallbackInfo& i) {
  const float* t = F32(i[0]);
  const int32_t* ids = I32(i[1]);
  float* o = F32(i[2]);
  int64_t rows = Int(i[3]), dim = Int(i[4]);
  for (int64_t r = 0; r < rows; r++) std::memcpy(o + r * dim, t + (int64_t)ids[r] * dim, sizeof(float) * dim);
  return i.Env().Undefined();
}

// embeddingBackward(dOut, ids, dTable, rows, dim): dTable[ids[r]] += dOut[r]. Split by output column
// so threads never write the same element and the sum order stays fixed.
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& i) {
  const float* g = F32(i[0]);
  const int32_t* ids = I32(i[1]);
  float* dt = F32(i[2]);
  int64_t rows = Int(i[3]), dim = Int(i[4]);
  ParallelFor(dim, rows * dim > kGrain ? 16 : dim, [&](int64_t cb, int64_t ce) {
    for (int64_t r = 0; r < rows; r++) {
      float* dst = dt + (int64_t)ids[r] * dim;
      const float* src = g + r * dim;
#pragma omp simd
      for (int64_t d = cb; d < ce; d++) dst[d] += src[d];
    }
  });
  return i.Env().Undefined();
}

}  // namespace

void InitElementwise(Napi::Env env, Napi::Object exports) {
  exports.Set("swiglu", Napi::Function::New(env, Swiglu));
  exports.Set("swigluBackward", Napi::Function::New(env, SwigluBackward));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("scale", Napi::Function::New(env, Scale));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
}

}  // namespace klear
