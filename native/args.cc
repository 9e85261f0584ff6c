// The error a kernel throws for a bad argument. src/engine/native.ts hands in a factory that builds a
// KlearError, so callers see the same typed error as everywhere else in klear.
#include "common.h"

namespace klear {
namespace {

Napi::FunctionReference* errorFactory = nullptr;

// setErrorFactory(fn: (message: string) => Error)
Napi::Value SetErrorFactory(const Napi::CallbackInfo& i) {
  if (!i[0].IsFunction()) {
    Napi::TypeError::New(i.Env(), "setErrorFactory: expected a function").ThrowAsJavaScriptException();
    return i.Env().Undefined();
  }
  if (!errorFactory) errorFactory = new Napi::FunctionReference();
  *errorFactory = Napi::Persistent(i[0].As<Napi::Function>());
  return i.Env().Undefined();
}

}  // namespace

void ThrowBadArgument(Napi::Env env, const std::string& message) {
  if (errorFactory && !errorFactory->IsEmpty()) {
    Napi::Value err = errorFactory->Call({Napi::String::New(env, message)});
    if (env.IsExceptionPending()) return;
    Napi::Error(env, err).ThrowAsJavaScriptException();
    return;
  }
  Napi::Error e = Napi::RangeError::New(env, message);
  e.Set("code", Napi::String::New(env, "NATIVE_BAD_ARGUMENT"));
  e.ThrowAsJavaScriptException();
}

void InitArgs(Napi::Env env, Napi::Object exports) {
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory));
}

}  // namespace klear
