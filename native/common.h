// Shared helpers for the klear native kernels: argument unpacking, a small persistent thread pool
// and a vectorisable exp. Every kernel family lives in its own .cc and registers itself in addon.cc.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>

namespace klear {

inline int64_t Int(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
inline float Flt(const Napi::Value& v) { return v.As<Napi::Number>().FloatValue(); }
inline double Dbl(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
inline bool Bool(const Napi::Value& v) { return v.ToBoolean().Value(); }

// Throws the JS error for a bad kernel argument: a KlearError("NATIVE_BAD_ARGUMENT") when src/engine
// registered its factory (setErrorFactory), else a RangeError carrying the same code.
void ThrowBadArgument(Napi::Env env, const std::string& message);

// Checked argument unpacking for one kernel call. Every getter validates type, sign and (for arrays)
// that the view holds at least the elements the dimensions imply, so a wrong length from JavaScript
// throws instead of reading or writing past the buffer. The first failure is kept; later getters
// return null / 0 and the kernel must `return args.Fail()` when `args.failed()`.
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* kernel) : info_(info), kernel_(kernel) {}

  bool failed() const { return !message_.empty(); }
  Napi::Value Fail() {
    ThrowBadArgument(info_.Env(), message_);
    return info_.Env().Undefined();
  }
  void Reject(const std::string& what) {
    if (!failed()) message_ = std::string(kernel_) + ": " + what;
  }

  // A non-negative integer (dimensions, counts).
  int64_t Dim(size_t index, const char* name) {
    if (failed()) return 0;
    Napi::Value v = info_[index];
    if (!v.IsNumber()) {
      Reject(std::string(name) + " (argument " + std::to_string(index) + ") must be a number");
      return 0;
    }
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9.0e15) || d != (double)(int64_t)d) {
      Reject(std::string(name) + " = " + std::to_string(d) + " must be a non-negative integer");
      return 0;
    }
    return (int64_t)d;
  }

  float* F32(size_t index, const char* name, int64_t need, bool nullable = false) {
    return static_cast<float*>(Array(index, name, need, nullable, napi_float32_array, "Float32Array"));
  }
  int32_t* I32(size_t index, const char* name, int64_t need, bool nullable = false) {
    return static_cast<int32_t*>(Array(index, name, need, nullable, napi_int32_array, "Int32Array"));
  }
  // Element count of a typed-array argument (0 when absent or on failure).
  int64_t Length(size_t index) {
    Napi::Value v = info_[index];
    return v.IsTypedArray() ? (int64_t)v.As<Napi::TypedArray>().ElementLength() : 0;
  }
  bool Present(size_t index) {
    return index < info_.Length() && !info_[index].IsNull() && !info_[index].IsUndefined();
  }
  // Every entry of ids[0..n) in [lo, hi); names the first one outside.
  void IdsIn(const int32_t* ids, int64_t n, int64_t lo, int64_t hi, const char* name, const char* range) {
    if (failed() || !ids) return;
    for (int64_t r = 0; r < n; r++) {
      if (ids[r] < lo || ids[r] >= hi) {
        Reject(std::string(name) + "[" + std::to_string(r) + "] = " + std::to_string(ids[r]) + " is outside [" +
               std::to_string(lo) + ", " + std::to_string(hi) + ") (" + range + ")");
        return;
      }
    }
  }

 private:
  void* Array(size_t index, const char* name, int64_t need, bool nullable, napi_typedarray_type type,
              const char* typeName) {
    if (failed()) return nullptr;
    Napi::Value v = index < info_.Length() ? info_[index] : info_.Env().Undefined();
    if (v.IsNull() || v.IsUndefined()) {
      if (nullable) return nullptr;
      Reject(std::string(name) + " (argument " + std::to_string(index) + ") is missing; expected a " + typeName);
      return nullptr;
    }
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
      Reject(std::string(name) + " (argument " + std::to_string(index) + ") must be a " + typeName);
      return nullptr;
    }
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    int64_t have = (int64_t)t.ElementLength();
    if (have < need) {
      Reject(std::string(name) + " holds " + std::to_string(have) + " elements, the dimensions need " +
             std::to_string(need));
      return nullptr;
    }
    return static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  }

  const Napi::CallbackInfo& info_;
  const char* kernel_;
  std::string message_;
};

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
void InitArgs(Napi::Env env, Napi::Object exports);

}  // namespace klear
