// Public API of src/engine: the compute seam, the native backend, the float64 reference backend
// (tests only), AdamW, gradient clipping and learning-rate schedules.
export type { Backend } from "./backend.js";
export {
  getNativeBackend,
  NATIVE_BAD_ARGUMENT,
  type NativeInfo,
  nativeAvailable,
  nativeInfo,
  setNativeThreads,
} from "./native.js";
export {
  AdamW,
  type AdamWOptions,
  type AdamWState,
  type AdamWStateTensor,
  adamWStateFromTensors,
  adamWStateTensors,
  clipGradNorm,
  countLossTokens,
  gradNorm,
  type LrSchedule,
  lrAt,
  type Parameter,
  zeroGrads,
} from "./optim.js";
