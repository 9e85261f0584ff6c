// Log-softmax gathered at the target token, with the distribution's entropy: the boundary between
// the model and every loss (SFT cross-entropy, policy-gradient objectives).
#include "common.h"

namespace klear {
namespace {

// logSoftmaxGather(logits, targets, rows, vocab, logp, lse, entropy|null). A negative target marks a
// row to skip (padding): its logp, lse and entropy are 0.
Napi::Value LogSoftmaxGather(const Napi::CallbackInfo& i) {
  Args a(i, "logSoftmaxGather");
  const int64_t rows = a.Dim(2, "rows"), V = a.Dim(3, "vocab");
  const float* z = a.F32(0, "logits", rows * V);
  const int32_t* tg = a.I32(1, "targets", rows);
  float* logp = a.F32(4, "logp", rows);
  float* lse = a.F32(5, "lse", rows);
  float* ent = a.F32(6, "entropy", rows, true);
  a.IdsIn(tg, rows, INT32_MIN, V, "targets", "negative masks the row, else below vocab");
  if (a.failed()) return a.Fail();
  ParallelFor(rows, 1 + 16384 / (V > 0 ? V : 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      if (tg[r] < 0) {
        logp[r] = 0;
        lse[r] = 0;
        if (ent) ent[r] = 0;
        continue;
      }
      const float* zr = z + r * V;
      float m = -INFINITY;
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < V; j++) m = zr[j] > m ? zr[j] : m;
      float sum = 0, sz = 0;
#pragma omp simd reduction(+ : sum, sz)
      for (int64_t j = 0; j < V; j++) {
        float ex = FastExp(zr[j] - m);
        sum += ex;
        sz += ex * (zr[j] - m);
      }
      float l = std::log(sum);
      lse[r] = m + l;
      logp[r] = zr[tg[r]] - m - l;
      if (ent) ent[r] = l - sz / sum;
    }
  });
  return i.Env().Undefined();
}

// logSoftmaxGatherBackward(logits, targets, lse, entropy|null, dLogp, dEntropy|null, dLogits, rows, vocab)
// dLogits overwritten: dz_j = dLogp (δ_jt − p_j) − dEnt · p_j (log p_j + H).
Napi::Value LogSoftmaxGatherBackward(const Napi::CallbackInfo& i) {
  Args a(i, "logSoftmaxGatherBackward");
  const int64_t rows = a.Dim(7, "rows"), V = a.Dim(8, "vocab");
  const float* z = a.F32(0, "logits", rows * V);
  const int32_t* tg = a.I32(1, "targets", rows);
  const float* lse = a.F32(2, "lse", rows);
  const float* ent = a.F32(3, "entropy", rows, true);
  const float* dlp = a.F32(4, "dLogp", rows);
  const float* dent = a.F32(5, "dEntropy", rows, true);
  float* dz = a.F32(6, "dLogits", rows * V);
  a.IdsIn(tg, rows, INT32_MIN, V, "targets", "negative masks the row, else below vocab");
  if (a.failed()) return a.Fail();
  ParallelFor(rows, 1 + 16384 / (V > 0 ? V : 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      float* dr = dz + r * V;
      if (tg[r] < 0) {
        std::memset(dr, 0, sizeof(float) * V);
        continue;
      }
      const float* zr = z + r * V;
      float l = lse[r];
      float g = dlp[r];
      float ge = dent && ent ? dent[r] : 0.0f;
      float H = ent ? ent[r] : 0.0f;
      if (ge != 0.0f) {
#pragma omp simd
        for (int64_t j = 0; j < V; j++) {
          float lp = zr[j] - l;
          float p = FastExp(lp);
          dr[j] = -g * p - ge * p * (lp + H);
        }
      } else {
#pragma omp simd
        for (int64_t j = 0; j < V; j++) dr[j] = -g * FastExp(zr[j] - l);
      }
      dr[tg[r]] += g;
    }
  });
  return i.Env().Undefined();
}

}  // namespace

void InitLoss(Napi::Env env, Napi::Object exports) {
  exports.Set("logSoftmaxGather", Napi::Function::New(env, LogSoftmaxGather));
  exports.Set("logSoftmaxGatherBackward", Napi::Function::New(env, LogSoftmaxGatherBackward));
}

}  // namespace klear
