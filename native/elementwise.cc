// Elementwise kernels: SwiGLU, residual adds, scaling, and the embedding gather / scatter-add.
#include <vector>

#include "common.h"

namespace klear {
namespace {

constexpr int64_t kGrain = 16384;

// swiglu(gate, up, out, n): out = silu(gate) * up
Napi::Value Swiglu(const Napi::CallbackInfo& i) {
  Args a(i, "swiglu");
  const int64_t n = a.Dim(3, "n");
  const float* g = a.F32(0, "gate", n);
  const float* u = a.F32(1, "up", n);
  float* o = a.F32(2, "out", n);
  if (a.failed()) return a.Fail();
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
  Args a(i, "swigluBackward");
  const int64_t n = a.Dim(5, "n");
  const float* dout = a.F32(0, "dOut", n);
  const float* g = a.F32(1, "gate", n);
  const float* u = a.F32(2, "up", n);
  float* dg = a.F32(3, "dGate", n);
  float* du = a.F32(4, "dUp", n);
  if (a.failed()) return a.Fail();
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
  Args a(i, "add");
  const int64_t n = a.Dim(2, "n");
  float* d = a.F32(0, "dst", n);
  const float* s = a.F32(1, "src", n);
  if (a.failed()) return a.Fail();
  ParallelFor(n, kGrain * 4, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) d[j] += s[j];
  });
  return i.Env().Undefined();
}

// scale(x, alpha, n): x *= alpha
Napi::Value Scale(const Napi::CallbackInfo& i) {
  Args args(i, "scale");
  const int64_t n = args.Dim(2, "n");
  float* x = args.F32(0, "x", n);
  if (args.failed()) return args.Fail();
  float a = Flt(i[1]);
  ParallelFor(n, kGrain * 4, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) x[j] *= a;
  });
  return i.Env().Undefined();
}

// embedding(table, ids, out, rows, dim): out[r] = table[ids[r]]
Napi::Value Embedding(const Napi::CallbackInfo& i) {
  Args a(i, "embedding");
  const int64_t rows = a.Dim(3, "rows"), dim = a.Dim(4, "dim");
  const int64_t vocab = dim > 0 ? a.Length(0) / dim : 0;
  const float* t = a.F32(0, "table", 0);
  const int32_t* ids = a.I32(1, "ids", rows);
  float* o = a.F32(2, "out", rows * dim);
  a.IdsIn(ids, rows, 0, vocab, "ids", "rows of the table");
  if (a.failed()) return a.Fail();
  for (int64_t r = 0; r < rows; r++) std::memcpy(o + r * dim, t + (int64_t)ids[r] * dim, sizeof(float) * dim);
  return i.Env().Undefined();
}

// embeddingBackward(dOut, ids, dTable, rows, dim): dTable[ids[r]] += dOut[r]. Split by output column
// so threads never write the same element and the sum order stays fixed.
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& i) {
  Args a(i, "embeddingBackward");
  const int64_t rows = a.Dim(3, "rows"), dim = a.Dim(4, "dim");
  const int64_t vocab = dim > 0 ? a.Length(2) / dim : 0;
  const float* g = a.F32(0, "dOut", rows * dim);
  const int32_t* ids = a.I32(1, "ids", rows);
  float* dt = a.F32(2, "dTable", 0);
  a.IdsIn(ids, rows, 0, vocab, "ids", "rows of the table");
  if (a.failed()) return a.Fail();
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
