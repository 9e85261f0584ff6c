// Rotary embedding in HF's rotate-half layout, in place. The backward pass is the inverse rotation.
#include "common.h"

namespace klear {
namespace {

// rope(x, cos, sin, positions, rows, heads, headDim, inverse): x is [rows, heads, headDim];
// cos/sin are [maxPos, headDim/2]; positions[row] picks the table row.
Napi::Value Rope(const Napi::CallbackInfo& i) {
  Args a(i, "rope");
  const int64_t rows = a.Dim(4, "rows"), heads = a.Dim(5, "heads"), hd = a.Dim(6, "headDim");
  if (hd % 2 != 0) a.Reject("headDim " + std::to_string(hd) + " must be even");
  const int64_t half = hd / 2;
  float* x = a.F32(0, "x", rows * heads * hd);
  const int64_t tableRows = half > 0 ? a.Length(1) / half : 0;
  const float* cs = a.F32(1, "cos", 0);
  const float* sn = a.F32(2, "sin", tableRows * half);
  const int32_t* pos = a.I32(3, "positions", rows);
  a.IdsIn(pos, rows, 0, tableRows, "positions", "rows of the cos/sin table");
  if (a.failed()) return a.Fail();
  float sign = Bool(i[7]) ? -1.0f : 1.0f;
  ParallelFor(rows, 64, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const float* c = cs + (int64_t)pos[r] * half;
      const float* s = sn + (int64_t)pos[r] * half;
      for (int64_t h = 0; h < heads; h++) {
        float* v = x + (r * heads + h) * hd;
#pragma omp simd
        for (int64_t d = 0; d < half; d++) {
          float a = v[d], bb = v[d + half];
          float si = sign * s[d];
          v[d] = a * c[d] - bb * si;
          v[d + half] = bb * c[d] + a * si;
        }
      }
    }
  });
  return i.Env().Undefined();
}

}  // namespace

void InitRope(Napi::Env env, Napi::Object exports) { exports.Set("rope", Napi::Function::New(env, Rope)); }

}  // namespace klear
