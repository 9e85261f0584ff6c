// Entry point of klear_native: registers each kernel family.
#include "common.h"

namespace klear {

void InitConvert(Napi::Env env, Napi::Object exports);

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitGemm(env, exports);
  InitNorms(env, exports);
  InitRope(env, exports);
  InitAttention(env, exports);
  InitElementwise(env, exports);
  InitLoss(env, exports);
  InitOptimizer(env, exports);
  InitConvert(env, exports);
  InitArgs(env, exports);
  return exports;
}

}  // namespace klear

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return klear::Init(env, exports); }

NODE_API_MODULE(klear_native, InitAddon)
