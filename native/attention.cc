// Causal softmax attention with grouped-query heads. Training: whole right-padded sequences, saving
// the per-row log-sum-exp so the backward pass recomputes probabilities instead of storing T×T.
// Decode: query rows against a KV cache, each row seeing its own sequence's keys up to its position.
#include <vector>

#include "common.h"

namespace klear {
namespace {

// Shapes shared by the training kernels: heads split into groups, lengths within the row, each
// segStart entry inside [0, t] of its own row.
static void CheckTrainingShape(Args& a, int64_t B, int64_t T, int64_t H, int64_t Hkv, const int32_t* lengths,
                               const int32_t* segStart) {
  if (a.failed()) return;
  if (Hkv == 0 || H % Hkv != 0)
    a.Reject("heads " + std::to_string(H) + " must be a multiple of kvHeads " + std::to_string(Hkv) + " (> 0)");
  a.IdsIn(lengths, B, 0, T + 1, "lengths", "0..seqLen");
  if (a.failed() || !segStart) return;
  for (int64_t b = 0; b < B; b++)
    for (int64_t t = 0; t < T; t++)
      if (segStart[b * T + t] < 0 || segStart[b * T + t] > t) {
        a.Reject("segStart[" + std::to_string(b * T + t) + "] = " + std::to_string(segStart[b * T + t]) +
                 " is outside [0, " + std::to_string(t) + "] (a document starts at or before its token)");
        return;
      }
}

static inline float Dot(const float* a, const float* b, int64_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t d = 0; d < n; d++) s += a[d] * b[d];
  return s;
}

// Keys (or values) of one sequence and KV head, transposed to [headDim][T] so that scores for a query
// row vectorise across key positions instead of reducing across the head dimension.
static void Transpose(const float* src, int64_t rowStride, int64_t n, int64_t hd, int64_t T, float* dst) {
  for (int64_t j = 0; j < n; j++) {
    const float* r = src + j * rowStride;
    for (int64_t d = 0; d < hd; d++) dst[d * T + j] = r[d];
  }
}

// s[0..n) = scale · q · Kt[:, 0..n)
static inline void Scores(const float* q, const float* Kt, int64_t T, int64_t n, int64_t hd, float scale, float* s) {
  for (int64_t j = 0; j < n; j++) s[j] = 0;
  for (int64_t d = 0; d < hd; d++) {
    const float qd = q[d] * scale;
    const float* kr = Kt + d * T;
#pragma omp simd
    for (int64_t j = 0; j < n; j++) s[j] += qd * kr[j];
  }
}

// With the AVX-512 sgemm available, each (sequence, head) runs as small dense products: S = QKᵀ over
// the real length, a causal row softmax, then PV (and the five products of the backward pass). The
// masked upper triangle costs flops but runs at GEMM speed, several times the row-by-row loops below.
static void AttentionGemm(const float* q, const float* k, const float* v, float* out, float* lse, int64_t B,
                          int64_t T, int64_t H, int64_t Hkv, int64_t hd, const int32_t* lengths, float scale,
                          const int32_t* segStart) {
  const int64_t group = H / Hkv;
  ParallelFor(B * H, 1, [&](int64_t ub, int64_t ue) {
    std::vector<float> S(T * T);
    for (int64_t u = ub; u < ue; u++) {
      const int64_t b = u / H, h = u % H, kh = h / group;
      const int64_t len = lengths ? lengths[b] : T;
      const float* Q = q + (b * T * H + h) * hd;
      const float* K = k + (b * T * Hkv + kh) * hd;
      const float* V = v + (b * T * Hkv + kh) * hd;
      float* O = out + (b * T * H + h) * hd;
      for (int64_t t = len; t < T; t++) {
        std::memset(O + t * H * hd, 0, sizeof(float) * hd);
        lse[(b * H + h) * T + t] = 0;
      }
      if (len == 0) continue;
      OwnGemmSerial(false, true, len, len, hd, scale, Q, H * hd, K, Hkv * hd, 0.0f, S.data(), len);
      for (int64_t t = 0; t < len; t++) {
        float* s = S.data() + t * len;
        const int64_t st = segStart ? segStart[b * T + t] : 0;
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int64_t j = st; j <= t; j++) m = s[j] > m ? s[j] : m;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = st; j <= t; j++) {
          float e = FastExp(s[j] - m);
          s[j] = e;
          sum += e;
        }
        const float inv = 1.0f / sum;
#pragma omp simd
        for (int64_t j = st; j <= t; j++) s[j] *= inv;
        for (int64_t j = 0; j < st; j++) s[j] = 0;
        for (int64_t j = t + 1; j < len; j++) s[j] = 0;
        lse[(b * H + h) * T + t] = m + std::log(sum);
      }
      OwnGemmSerial(false, false, len, hd, len, 1.0f, S.data(), len, V, Hkv * hd, 0.0f, O, H * hd);
    }
  });
}

static void AttentionBackwardGemm(const float* dout, const float* q, const float* k, const float* v, const float* out,
                                  const float* lse, float* dq, float* dk, float* dv, int64_t B, int64_t T, int64_t H,
                                  int64_t Hkv, int64_t hd, const int32_t* lengths, float scale,
                                  const int32_t* segStart) {
  const int64_t group = H / Hkv;
  ParallelFor(B * Hkv, 1, [&](int64_t ub, int64_t ue) {
    std::vector<float> P(T * T), dS(T * T), D(T);
    for (int64_t u = ub; u < ue; u++) {
      const int64_t b = u / Hkv, kh = u % Hkv;
      const int64_t len = lengths ? lengths[b] : T;
      const float* K = k + (b * T * Hkv + kh) * hd;
      const float* V = v + (b * T * Hkv + kh) * hd;
      float* dK = dk + (b * T * Hkv + kh) * hd;
      float* dV = dv + (b * T * Hkv + kh) * hd;
      for (int64_t t = 0; t < T; t++) {
        std::memset(dK + t * Hkv * hd, 0, sizeof(float) * hd);
        std::memset(dV + t * Hkv * hd, 0, sizeof(float) * hd);
      }
      for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
        const float* Q = q + (b * T * H + h) * hd;
        const float* dO = dout + (b * T * H + h) * hd;
        const float* O = out + (b * T * H + h) * hd;
        float* dQ = dq + (b * T * H + h) * hd;
        for (int64_t t = len; t < T; t++) std::memset(dQ + t * H * hd, 0, sizeof(float) * hd);
        if (len == 0) continue;
        OwnGemmSerial(false, true, len, len, hd, scale, Q, H * hd, K, Hkv * hd, 0.0f, P.data(), len);
        OwnGemmSerial(false, true, len, len, hd, 1.0f, dO, H * hd, V, Hkv * hd, 0.0f, dS.data(), len);
        for (int64_t t = 0; t < len; t++) {
          const float* o = O + t * H * hd;
          const float* g = dO + t * H * hd;
          float Dt = 0;
#pragma omp simd reduction(+ : Dt)
          for (int64_t d = 0; d < hd; d++) Dt += g[d] * o[d];
          const float l = lse[(b * H + h) * T + t];
          float* p = P.data() + t * len;
          float* ds = dS.data() + t * len;
          const int64_t st = segStart ? segStart[b * T + t] : 0;
          for (int64_t j = 0; j < st; j++) {
            p[j] = 0;
            ds[j] = 0;
          }
#pragma omp simd
          for (int64_t j = st; j <= t; j++) {
            const float pj = FastExp(p[j] - l);
            p[j] = pj;
            ds[j] = pj * (ds[j] - Dt) * scale;
          }
          for (int64_t j = t + 1; j < len; j++) {
            p[j] = 0;
            ds[j] = 0;
          }
        }
        OwnGemmSerial(false, false, len, hd, len, 1.0f, dS.data(), len, K, Hkv * hd, 0.0f, dQ, H * hd);
        OwnGemmSerial(true, false, len, hd, len, 1.0f, dS.data(), len, Q, H * hd, 1.0f, dK, Hkv * hd);
        OwnGemmSerial(true, false, len, hd, len, 1.0f, P.data(), len, dO, H * hd, 1.0f, dV, Hkv * hd);
      }
    }
  });
}

// attention(q, k, v, out, lse, batch, seqLen, nHeads, nKvHeads, headDim, lengths|null, scale, segStart|null)
// segStart[b*seqLen + t] is where token t's packed document starts in its row: it attends [segStart, t].
// q/out: [batch*seqLen, nHeads, headDim]; k/v: [batch*seqLen, nKvHeads, headDim]; lse: [batch, nHeads, seqLen].
Napi::Value Attention(const Napi::CallbackInfo& i) {
  Args a(i, "attention");
  const int64_t B = a.Dim(5, "batch"), T = a.Dim(6, "seqLen"), H = a.Dim(7, "heads"), Hkv = a.Dim(8, "kvHeads"),
                hd = a.Dim(9, "headDim");
  const float* q = a.F32(0, "q", B * T * H * hd);
  const float* k = a.F32(1, "k", B * T * Hkv * hd);
  const float* v = a.F32(2, "v", B * T * Hkv * hd);
  float* out = a.F32(3, "out", B * T * H * hd);
  float* lse = a.F32(4, "lse", B * H * T);
  const int32_t* lengths = a.I32(10, "lengths", B, true);
  const int32_t* segStart = a.Present(12) ? a.I32(12, "segStart", B * T) : nullptr;
  CheckTrainingShape(a, B, T, H, Hkv, lengths, segStart);
  if (a.failed()) return a.Fail();
  float scale = Flt(i[11]);
  if (UseOwnGemmKernels()) {
    AttentionGemm(q, k, v, out, lse, B, T, H, Hkv, hd, lengths, scale, segStart);
    return i.Env().Undefined();
  }
  int64_t group = H / Hkv;
  ParallelFor(B * H, 1, [&](int64_t ub, int64_t ue) {
    std::vector<float> p(T), Kt(hd * T);
    for (int64_t u = ub; u < ue; u++) {
      int64_t b = u / H, h = u % H, kh = h / group;
      int64_t len = lengths ? lengths[b] : T;
      Transpose(k + (b * T * Hkv + kh) * hd, Hkv * hd, len, hd, T, Kt.data());
      for (int64_t t = 0; t < T; t++) {
        float* o = out + ((b * T + t) * H + h) * hd;
        float* l = lse + (b * H + h) * T + t;
        if (t >= len) {
          std::memset(o, 0, sizeof(float) * hd);
          *l = 0;
          continue;
        }
        const float* qt = q + ((b * T + t) * H + h) * hd;
        int64_t n = t + 1;
        const int64_t st = segStart ? segStart[b * T + t] : 0;
        // Only the token's own document [st, t] is scored (packed rows skip the other documents' keys).
        Scores(qt, Kt.data() + st, T, n - st, hd, scale, p.data() + st);
        float m = -INFINITY;
#pragma omp simd reduction(max : m)
        for (int64_t j = st; j < n; j++) m = p[j] > m ? p[j] : m;
        float sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = st; j < n; j++) {
          float e = FastExp(p[j] - m);
          p[j] = e;
          sum += e;
        }
        float inv = 1.0f / sum;
        std::memset(o, 0, sizeof(float) * hd);
        for (int64_t j = st; j < n; j++) {
          const float* vj = v + ((b * T + j) * Hkv + kh) * hd;
          float pj = p[j] * inv;
#pragma omp simd
          for (int64_t d = 0; d < hd; d++) o[d] += pj * vj[d];
        }
        *l = m + std::log(sum);
      }
    }
  });
  return i.Env().Undefined();
}

// attentionBackward(dOut, q, k, v, out, lse, dq, dk, dv, batch, seqLen, nHeads, nKvHeads, headDim,
// lengths|null, scale, segStart|null): dq, dk, dv are overwritten. Work is split by (sequence, KV head) so the query
// heads sharing a KV head add into dk/dv from one thread.
Napi::Value AttentionBackward(const Napi::CallbackInfo& i) {
  Args a(i, "attentionBackward");
  const int64_t B = a.Dim(9, "batch"), T = a.Dim(10, "seqLen"), H = a.Dim(11, "heads"), Hkv = a.Dim(12, "kvHeads"),
                hd = a.Dim(13, "headDim");
  const int64_t qn = B * T * H * hd, kvn = B * T * Hkv * hd;
  const float* dout = a.F32(0, "dOut", qn);
  const float* q = a.F32(1, "q", qn);
  const float* k = a.F32(2, "k", kvn);
  const float* v = a.F32(3, "v", kvn);
  const float* out = a.F32(4, "out", qn);
  const float* lse = a.F32(5, "lse", B * H * T);
  float* dq = a.F32(6, "dq", qn);
  float* dk = a.F32(7, "dk", kvn);
  float* dv = a.F32(8, "dv", kvn);
  const int32_t* lengths = a.I32(14, "lengths", B, true);
  const int32_t* segStart = a.Present(16) ? a.I32(16, "segStart", B * T) : nullptr;
  CheckTrainingShape(a, B, T, H, Hkv, lengths, segStart);
  if (a.failed()) return a.Fail();
  float scale = Flt(i[15]);
  if (UseOwnGemmKernels()) {
    AttentionBackwardGemm(dout, q, k, v, out, lse, dq, dk, dv, B, T, H, Hkv, hd, lengths, scale, segStart);
    return i.Env().Undefined();
  }
  int64_t group = H / Hkv;
  ParallelFor(B * Hkv, 1, [&](int64_t ub, int64_t ue) {
    std::vector<float> p(T), dp(T), Kt(hd * T), Vt(hd * T);
    for (int64_t u = ub; u < ue; u++) {
      int64_t b = u / Hkv, kh = u % Hkv;
      int64_t len = lengths ? lengths[b] : T;
      for (int64_t t = 0; t < T; t++) {
        std::memset(dk + ((b * T + t) * Hkv + kh) * hd, 0, sizeof(float) * hd);
        std::memset(dv + ((b * T + t) * Hkv + kh) * hd, 0, sizeof(float) * hd);
      }
      Transpose(k + (b * T * Hkv + kh) * hd, Hkv * hd, len, hd, T, Kt.data());
      Transpose(v + (b * T * Hkv + kh) * hd, Hkv * hd, len, hd, T, Vt.data());
      for (int64_t h = kh * group; h < (kh + 1) * group; h++) {
        for (int64_t t = 0; t < T; t++) {
          float* dqt = dq + ((b * T + t) * H + h) * hd;
          std::memset(dqt, 0, sizeof(float) * hd);
          if (t >= len) continue;
          const float* qt = q + ((b * T + t) * H + h) * hd;
          const float* dot = dout + ((b * T + t) * H + h) * hd;
          const float* ot = out + ((b * T + t) * H + h) * hd;
          const float l = lse[(b * H + h) * T + t];
          const int64_t n = t + 1;
          const int64_t st = segStart ? segStart[b * T + t] : 0;
          float D = 0;
#pragma omp simd reduction(+ : D)
          for (int64_t d = 0; d < hd; d++) D += dot[d] * ot[d];
          Scores(qt, Kt.data() + st, T, n - st, hd, scale, p.data() + st);
          Scores(dot, Vt.data() + st, T, n - st, hd, 1.0f, dp.data() + st);
#pragma omp simd
          for (int64_t j = st; j < n; j++) {
            float pj = FastExp(p[j] - l);
            p[j] = pj;
            dp[j] = pj * (dp[j] - D) * scale;
          }
          for (int64_t j = st; j < n; j++) {
            const float* kj = k + ((b * T + j) * Hkv + kh) * hd;
            float* dkj = dk + ((b * T + j) * Hkv + kh) * hd;
            float* dvj = dv + ((b * T + j) * Hkv + kh) * hd;
            const float ds = dp[j], pj = p[j];
#pragma omp simd
            for (int64_t d = 0; d < hd; d++) {
              dqt[d] += ds * kj[d];
              dkj[d] += ds * qt[d];
              dvj[d] += pj * dot[d];
            }
          }
        }
      }
    }
  });
  return i.Env().Undefined();
}

// kvWrite(src, cache, rowSeq, rowPos, rows, nKvHeads, headDim, maxLen): src [rows, nKvHeads, headDim]
// into cache [seqs, nKvHeads, maxLen, headDim].
Napi::Value KvWrite(const Napi::CallbackInfo& i) {
  Args a(i, "kvWrite");
  const int64_t R = a.Dim(4, "rows"), Hkv = a.Dim(5, "kvHeads"), hd = a.Dim(6, "headDim"), maxLen = a.Dim(7, "maxLen");
  const float* src = a.F32(0, "src", R * Hkv * hd);
  const int64_t perSeq = Hkv * maxLen * hd;
  const int64_t seqs = perSeq > 0 ? a.Length(1) / perSeq : 0;
  float* cache = a.F32(1, "cache", 0);
  const int32_t* rowSeq = a.I32(2, "rowSeq", R);
  const int32_t* rowPos = a.I32(3, "rowPos", R);
  a.IdsIn(rowSeq, R, 0, seqs, "rowSeq", "sequences the cache holds");
  a.IdsIn(rowPos, R, 0, maxLen, "rowPos", "0..maxLen-1");
  if (a.failed()) return a.Fail();
  for (int64_t r = 0; r < R; r++)
    for (int64_t h = 0; h < Hkv; h++)
      std::memcpy(cache + (((int64_t)rowSeq[r] * Hkv + h) * maxLen + rowPos[r]) * hd, src + (r * Hkv + h) * hd,
                  sizeof(float) * hd);
  return i.Env().Undefined();
}

// attentionDecode(q, kCache, vCache, out, rowSeq, rowPos, rows, nHeads, nKvHeads, headDim, maxLen, scale)
// q/out: [rows, nHeads, headDim]; row r attends keys 0..rowPos[r] of sequence rowSeq[r].
Napi::Value AttentionDecode(const Napi::CallbackInfo& i) {
  Args a(i, "attentionDecode");
  const int64_t R = a.Dim(6, "rows"), H = a.Dim(7, "heads"), Hkv = a.Dim(8, "kvHeads"), hd = a.Dim(9, "headDim"),
                maxLen = a.Dim(10, "maxLen");
  if (!a.failed() && (Hkv == 0 || H % Hkv != 0))
    a.Reject("heads " + std::to_string(H) + " must be a multiple of kvHeads " + std::to_string(Hkv) + " (> 0)");
  const int64_t perSeq = Hkv * maxLen * hd;
  const int64_t seqs = perSeq > 0 ? a.Length(1) / perSeq : 0;
  const float* q = a.F32(0, "q", R * H * hd);
  const float* kc = a.F32(1, "kCache", 0);
  const float* vc = a.F32(2, "vCache", seqs * perSeq);
  float* out = a.F32(3, "out", R * H * hd);
  const int32_t* rowSeq = a.I32(4, "rowSeq", R);
  const int32_t* rowPos = a.I32(5, "rowPos", R);
  a.IdsIn(rowSeq, R, 0, seqs, "rowSeq", "sequences the cache holds");
  a.IdsIn(rowPos, R, 0, maxLen, "rowPos", "0..maxLen-1");
  if (a.failed()) return a.Fail();
  float scale = Flt(i[11]);
  int64_t group = H / Hkv;
  int64_t work = 0;
  for (int64_t r = 0; r < R; r++) work += rowPos[r] + 1;
  int64_t grain = work * H > 16384 ? 1 : R * H;
  ParallelFor(R * H, grain, [&](int64_t ub, int64_t ue) {
    std::vector<float> p(maxLen);
    for (int64_t u = ub; u < ue; u++) {
      int64_t r = u / H, h = u % H, kh = h / group;
      int64_t n = (int64_t)rowPos[r] + 1;
      const float* kbase = kc + ((int64_t)rowSeq[r] * Hkv + kh) * maxLen * hd;
      const float* vbase = vc + ((int64_t)rowSeq[r] * Hkv + kh) * maxLen * hd;
      const float* qr = q + (r * H + h) * hd;
      float* o = out + (r * H + h) * hd;
      float m = -INFINITY;
      for (int64_t j = 0; j < n; j++) {
        float s = scale * Dot(qr, kbase + j * hd, hd);
        p[j] = s;
        m = s > m ? s : m;
      }
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < n; j++) {
        float e = FastExp(p[j] - m);
        p[j] = e;
        sum += e;
      }
      float inv = 1.0f / sum;
      std::memset(o, 0, sizeof(float) * hd);
      for (int64_t j = 0; j < n; j++) {
        const float* vj = vbase + j * hd;
        float pj = p[j] * inv;
#pragma omp simd
        for (int64_t d = 0; d < hd; d++) o[d] += pj * vj[d];
      }
    }
  });
  return i.Env().Undefined();
}

}  // namespace

void InitAttention(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("kvWrite", Napi::Function::New(env, KvWrite));
  exports.Set("attentionDecode", Napi::Function::New(env, AttentionDecode));
}

}  // namespace klear
