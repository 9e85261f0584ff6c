// RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * w. The per-row 1/rms is saved
// for the backward pass.
#include <vector>

#include "common.h"

namespace klear {
namespace {

// rmsnorm(x, w, y, rstd, rows, dim, eps)
Napi::Value RmsNorm(const Napi::CallbackInfo& i) {
  Args a(i, "rmsnorm");
  const int64_t rows = a.Dim(4, "rows"), dim = a.Dim(5, "dim");
  const float* x = a.F32(0, "x", rows * dim);
  const float* w = a.F32(1, "weight", dim);
  float* y = a.F32(2, "y", rows * dim);
  float* rstd = a.F32(3, "rstd", rows);
  if (a.failed()) return a.Fail();
  float eps = Flt(i[6]);
  ParallelFor(rows, 2048 / (dim > 0 ? dim : 1) + 1, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      float ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t d = 0; d < dim; d++) ss += xr[d] * xr[d];
      float s = 1.0f / std::sqrt(ss / (float)dim + eps);
      rstd[r] = s;
#pragma omp simd
      for (int64_t d = 0; d < dim; d++) yr[d] = xr[d] * s * w[d];
    }
  });
  return i.Env().Undefined();
}

// rmsnormBackward(dy, x, w, rstd, dx, dw, rows, dim, accumulateDx): dw accumulates; dx is
// overwritten, or added to when accumulateDx (the residual stream's gradient).
Napi::Value RmsNormBackward(const Napi::CallbackInfo& i) {
  Args a(i, "rmsnormBackward");
  const int64_t rows = a.Dim(6, "rows"), dim = a.Dim(7, "dim");
  const float* dy = a.F32(0, "dy", rows * dim);
  const float* x = a.F32(1, "x", rows * dim);
  const float* w = a.F32(2, "weight", dim);
  const float* rstd = a.F32(3, "rstd", rows);
  float* dx = a.F32(4, "dx", rows * dim);
  float* dw = a.F32(5, "dWeight", dim);
  if (a.failed()) return a.Fail();
  bool acc = Bool(i[8]);
  int threads = NumThreads();
  std::vector<std::vector<float>> partial(threads, std::vector<float>(dim, 0.0f));
  int64_t grain = 2048 / (dim > 0 ? dim : 1) + 1;
  // Each chunk sums its rows' weight gradient privately; the chunks are then added in order, so the
  // result does not depend on timing.
  int parts = threads;
  if (rows / grain < parts) parts = (int)(rows / grain);
  if (parts < 1) parts = 1;
  ParallelFor(parts, 1, [&](int64_t pb, int64_t pe) {
    for (int64_t p = pb; p < pe; p++) {
      float* pw = partial[p].data();
      int64_t b = rows * p / parts, e = rows * (p + 1) / parts;
      for (int64_t r = b; r < e; r++) {
        const float* xr = x + r * dim;
        const float* gr = dy + r * dim;
        float* dxr = dx + r * dim;
        float s = rstd[r];
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < dim; d++) dot += gr[d] * w[d] * xr[d];
        float c = dot * s * s * s / (float)dim;
        if (acc) {
#pragma omp simd
          for (int64_t d = 0; d < dim; d++) dxr[d] += gr[d] * w[d] * s - xr[d] * c;
        } else {
#pragma omp simd
          for (int64_t d = 0; d < dim; d++) dxr[d] = gr[d] * w[d] * s - xr[d] * c;
        }
#pragma omp simd
        for (int64_t d = 0; d < dim; d++) pw[d] += gr[d] * xr[d] * s;
      }
    }
  });
  for (int p = 0; p < parts; p++)
    for (int64_t d = 0; d < dim; d++) dw[d] += partial[p][d];
  return i.Env().Undefined();
}

}  // namespace

void InitNorms(Napi::Env env, Napi::Object exports) {
  exports.Set("rmsnorm", Napi::Function::New(env, RmsNorm));
  exports.Set("rmsnormBackward", Napi::Function::New(env, RmsNormBackward));
}

}  // namespace klear
