// AdamW (decoupled weight decay, PyTorch's formula) and the squared norm used for gradient clipping.
#include <vector>

#include "common.h"

namespace klear {
namespace {

// adamw(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
Napi::Value AdamW(const Napi::CallbackInfo& i) {
  Args a(i, "adamw");
  const int64_t n = a.Dim(4, "n");
  float* p = a.F32(0, "param", n);
  const float* g = a.F32(1, "grad", n);
  float* m = a.F32(2, "m", n);
  float* v = a.F32(3, "v", n);
  if (a.failed()) return a.Fail();
  double lr = Dbl(i[5]), b1 = Dbl(i[6]), b2 = Dbl(i[7]), eps = Dbl(i[8]), wd = Dbl(i[9]);
  double step = Dbl(i[10]);
  float bc1 = (float)(1.0 - std::pow(b1, step));
  float bc2sqrt = (float)std::sqrt(1.0 - std::pow(b2, step));
  float decay = (float)(1.0 - lr * wd);
  float stepSize = (float)(lr / bc1);
  float fb1 = (float)b1, fb2 = (float)b2, feps = (float)eps;
  ParallelFor(n, 32768, [&](int64_t b, int64_t e) {
#pragma omp simd
    for (int64_t j = b; j < e; j++) {
      float gj = g[j];
      float mj = fb1 * m[j] + (1.0f - fb1) * gj;
      float vj = fb2 * v[j] + (1.0f - fb2) * gj * gj;
      m[j] = mj;
      v[j] = vj;
      float denom = std::sqrt(vj) / bc2sqrt + feps;
      p[j] = p[j] * decay - stepSize * mj / denom;
    }
  });
  return i.Env().Undefined();
}

// sumSquares(x, n) -> double: accumulated in double per fixed chunk, chunks added in order.
Napi::Value SumSquares(const Napi::CallbackInfo& i) {
  Args a(i, "sumSquares");
  const int64_t n = a.Dim(1, "n");
  const float* x = a.F32(0, "x", n);
  if (a.failed()) return a.Fail();
  constexpr int64_t kChunk = 65536;
  int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(chunks > 0 ? chunks : 1, 0.0);
  ParallelFor(chunks, 2, [&](int64_t cb, int64_t ce) {
    for (int64_t c = cb; c < ce; c++) {
      int64_t b = c * kChunk, e = b + kChunk < n ? b + kChunk : n;
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = b; j < e; j++) s += (double)x[j] * x[j];
      part[c] = s;
    }
  });
  double total = 0;
  for (int64_t c = 0; c < chunks; c++) total += part[c];
  return Napi::Number::New(i.Env(), total);
}

}  // namespace

void InitOptimizer(Napi::Env env, Napi::Object exports) {
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares));
}

}  // namespace klear
