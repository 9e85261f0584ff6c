// Rotary embedding in HF's rotate-half layout, in place. The backward pass is the inverse rotation.
#include "common.h"

namespace klear {
namespace {

// rope(x, cos, sin, positions, rows, heads, headDim, inverse): x is [rows, heads, headDim];
// cos/sin are [maxPos, headDim/2]; positions[row] picks the table row.
Napi::Value Rope(const Napi::CallbackInfo& i) {
  float* x = F32(i[0]);
  const float* cs = F32(i[1]);
  const float* sn = F32(i[2]);
  const int32_t* pos = I32(i[3]);
  int64_t rows = Int(i[4]), heads = Int(i[5]), hd = Int(i[6]);
  float sign = Bool(i[7]) ? -1.0f : 1.0f;
  int64_t half = hd / 2;
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
