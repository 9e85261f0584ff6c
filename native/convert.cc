// Checkpoint dtype conversions (bf16/f16 <-> f32) and positioned file reads that convert as they go.
// The loops are plain enough for GCC to vectorise at -O3 -march=native; f16 uses the F16C instructions
// where the CPU has them. Every conversion is bit-exact with the scalar JS fallback in
// src/model/safetensors.ts (NaN payloads included), which the tests check on all 65,536 16-bit patterns.
#include <errno.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#ifdef __F16C__
#include <immintrin.h>
#endif

#include "common.h"

namespace klear {
namespace {

// Checkpoint bytes may sit at any offset (a safetensors data section is not aligned), so loads and
// stores go through types that promise neither alignment nor a distinct alias set.
typedef uint16_t U16Unaligned __attribute__((aligned(1), may_alias));
typedef uint32_t U32Alias __attribute__((may_alias));

constexpr int64_t kGrain = 1 << 16;

void Bf16ToF32(const uint8_t* src, float* dst, int64_t n) {
  const U16Unaligned* s = reinterpret_cast<const U16Unaligned*>(src);
  U32Alias* d = reinterpret_cast<U32Alias*>(dst);
#pragma omp simd
  for (int64_t j = 0; j < n; j++) d[j] = (uint32_t)s[j] << 16;
}

// Exact half -> float bits, subnormals renormalised.
inline uint32_t HalfToFloatBits(uint32_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  // A NaN comes out quiet with its payload kept, as _mm256_cvtph_ps does.
  if (exp == 0x1f) return sign | 0x7f800000u | (mant ? 0x400000u : 0u) | (mant << 13);
  if (exp != 0) return sign | ((exp + 112) << 23) | (mant << 13);
  if (mant == 0) return sign;
  uint32_t e = 113;
  while (!(mant & 0x400u)) {
    mant <<= 1;
    e--;
  }
  return sign | (e << 23) | ((mant & 0x3ffu) << 13);
}

void F16ToF32(const uint8_t* src, float* dst, int64_t n) {
  int64_t j = 0;
#ifdef __F16C__
  for (; j + 8 <= n; j += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * j));
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(h));
  }
#endif
  const U16Unaligned* s = reinterpret_cast<const U16Unaligned*>(src);
  U32Alias* d = reinterpret_cast<U32Alias*>(dst);
  for (; j < n; j++) d[j] = HalfToFloatBits(s[j]);
}

// Round to nearest even; a NaN keeps its top bits and is made quiet, as torch does.
void F32ToBf16(const float* src, uint8_t* dst, int64_t n) {
  const U32Alias* s = reinterpret_cast<const U32Alias*>(src);
  U16Unaligned* d = reinterpret_cast<U16Unaligned*>(dst);
#pragma omp simd
  for (int64_t j = 0; j < n; j++) {
    uint32_t b = s[j];
    uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    uint32_t quietNan = (b >> 16) | 0x40u;
    d[j] = (uint16_t)((b & 0x7fffffffu) > 0x7f800000u ? quietNan : rounded);
  }
}

inline uint32_t FloatBitsToHalf(uint32_t bits) {
  uint32_t sign = (bits >> 16) & 0x8000u;
  int32_t exp = (int32_t)((bits >> 23) & 0xffu);
  uint32_t mant = bits & 0x7fffffu;
  if (exp == 0xff) return sign | 0x7c00u | (mant ? 0x200u : 0u);
  int32_t e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00u;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000u;
    uint32_t shift = (uint32_t)(14 - e);
    uint32_t half = 1u << (shift - 1);
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t h = mant >> shift;
    if (rem > half || (rem == half && (h & 1u))) h++;
    return sign | h;
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return sign | h;
}

void F32ToF16(const float* src, uint8_t* dst, int64_t n) {
  const U32Alias* s = reinterpret_cast<const U32Alias*>(src);
  U16Unaligned* d = reinterpret_cast<U16Unaligned*>(dst);
  int64_t j = 0;
#ifdef __F16C__
  for (; j + 8 <= n; j += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * j), h);
  }
  // The instruction keeps NaN payload bits; klear (like the JS writer) stores one canonical quiet NaN.
#pragma omp simd
  for (int64_t k = 0; k < j; k++) {
    uint32_t b = s[k];
    if ((b & 0x7fffffffu) > 0x7f800000u) d[k] = (uint16_t)(((b >> 16) & 0x8000u) | 0x7e00u);
  }
#endif
  for (; j < n; j++) d[j] = (uint16_t)FloatBitsToHalf(s[j]);
}

enum Dtype { kF32 = 0, kBf16 = 1, kF16 = 2 };

void ConvertToF32(int dtype, const uint8_t* src, float* dst, int64_t n) {
  if (dtype == kBf16)
    Bf16ToF32(src, dst, n);
  else if (dtype == kF16)
    F16ToF32(src, dst, n);
  else
    std::memcpy(dst, src, (size_t)n * 4);
}

// Byte view of any typed array (or DataView / Buffer): pointer and length.
bool Bytes(const Napi::CallbackInfo& info, size_t index, uint8_t** data, size_t* length) {
  Napi::Value v = info[index];
  if (!v.IsTypedArray()) {
    ThrowBadArgument(info.Env(), "convert: argument " + std::to_string(index) + " must be a typed array");
    return false;
  }
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  *data = static_cast<uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset();
  *length = t.ByteLength();
  return true;
}

// (src: 16-bit bytes, dst: Float32Array): converts dst.length values.
template <void (*Kernel)(const uint8_t*, float*, int64_t)>
Napi::Value Widen(const Napi::CallbackInfo& info) {
  uint8_t *src, *dst;
  size_t srcLen, dstLen;
  if (!Bytes(info, 0, &src, &srcLen) || !Bytes(info, 1, &dst, &dstLen)) return info.Env().Undefined();
  int64_t n = (int64_t)(dstLen / 4);
  if ((size_t)n * 2 > srcLen) {
    ThrowBadArgument(info.Env(), "convert: source holds fewer 16-bit values than the destination");
    return info.Env().Undefined();
  }
  float* out = reinterpret_cast<float*>(dst);
  ParallelFor(n, kGrain, [&](int64_t b, int64_t e) { Kernel(src + 2 * b, out + b, e - b); });
  return info.Env().Undefined();
}

// (src: Float32Array, dst: bytes): converts src.length values.
template <void (*Kernel)(const float*, uint8_t*, int64_t)>
Napi::Value Narrow(const Napi::CallbackInfo& info) {
  uint8_t *src, *dst;
  size_t srcLen, dstLen;
  if (!Bytes(info, 0, &src, &srcLen) || !Bytes(info, 1, &dst, &dstLen)) return info.Env().Undefined();
  int64_t n = (int64_t)(srcLen / 4);
  if ((size_t)n * 2 > dstLen) {
    ThrowBadArgument(info.Env(), "convert: destination has room for fewer 16-bit values than the source");
    return info.Env().Undefined();
  }
  const float* in = reinterpret_cast<const float*>(src);
  ParallelFor(n, kGrain, [&](int64_t b, int64_t e) { Kernel(in + b, dst + 2 * b, e - b); });
  return info.Env().Undefined();
}

// Reads count values of a dtype at a file position and converts them into dst, on a libuv thread.
// Float32 goes straight into dst; 16-bit dtypes pass through a small buffer that stays in cache.
class ReadConvertWorker : public Napi::AsyncWorker {
 public:
  ReadConvertWorker(Napi::Env env, int fd, int64_t position, int dtype, Napi::TypedArray dst)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        fd_(fd),
        position_(position),
        dtype_(dtype),
        dst_(reinterpret_cast<float*>(static_cast<uint8_t*>(dst.ArrayBuffer().Data()) + dst.ByteOffset())),
        count_((int64_t)(dst.ByteLength() / 4)),
        keepAlive_(Napi::Persistent(static_cast<Napi::Object>(dst))) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (dtype_ == kF32) {
      ReadFully(reinterpret_cast<uint8_t*>(dst_), count_ * 4, position_);
      return;
    }
    constexpr int64_t kChunkValues = 128 * 1024;
    std::vector<uint8_t> staging((size_t)(count_ < kChunkValues ? count_ : kChunkValues) * 2);
    for (int64_t done = 0; done < count_; done += kChunkValues) {
      int64_t n = count_ - done < kChunkValues ? count_ - done : kChunkValues;
      if (!ReadFully(staging.data(), n * 2, position_ + done * 2)) return;
      ConvertToF32(dtype_, staging.data(), dst_ + done, n);
    }
  }

  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  bool ReadFully(uint8_t* buf, int64_t length, int64_t position) {
    int64_t done = 0;
    while (done < length) {
      ssize_t got = pread(fd_, buf + done, (size_t)(length - done), (off_t)(position + done));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        SetError(std::string("read failed: ") + std::strerror(errno));
        return false;
      }
      if (got == 0) {
        SetError("unexpected end of file at byte " + std::to_string(position + done));
        return false;
      }
      done += got;
    }
    return true;
  }

  Napi::Promise::Deferred deferred_;
  int fd_;
  int64_t position_;
  int dtype_;
  float* dst_;
  int64_t count_;
  Napi::ObjectReference keepAlive_;
};

// readConvert(fd, position, dtype (0 f32, 1 bf16, 2 f16), dst: Float32Array): Promise<void>
Napi::Value ReadConvert(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    ThrowBadArgument(env, "readConvert: dst must be a Float32Array");
    return env.Undefined();
  }
  int dtype = (int)Int(info[2]);
  if (dtype < kF32 || dtype > kF16) {
    ThrowBadArgument(env, "readConvert: dtype code must be 0 (F32), 1 (BF16) or 2 (F16)");
    return env.Undefined();
  }
  auto* worker = new ReadConvertWorker(env, (int)Int(info[0]), Int(info[1]), dtype, info[3].As<Napi::TypedArray>());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitConvert(Napi::Env env, Napi::Object exports) {
  exports.Set("convertBf16ToF32", Napi::Function::New(env, Widen<Bf16ToF32>));
  exports.Set("convertF16ToF32", Napi::Function::New(env, Widen<F16ToF32>));
  exports.Set("convertF32ToBf16", Napi::Function::New(env, Narrow<F32ToBf16>));
  exports.Set("convertF32ToF16", Napi::Function::New(env, Narrow<F32ToF16>));
  exports.Set("readConvert", Napi::Function::New(env, ReadConvert));
}

}  // namespace klear
