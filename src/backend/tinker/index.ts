// Public API of src/backend/tinker: the Tinker client, the exact-gradient mapping and the training backend.
export {
  type AdamSettings,
  type LoraSettings,
  type SampleSettings,
  TINKER_SDK_VERSION,
  TinkerClient,
  type TinkerClientOptions,
  type TinkerClientStats,
  TinkerModel,
  TinkerRequestError,
} from "./client.js";
export {
  type BackendSectionConfig,
  BackendSectionSchema,
  type TinkerSettingsConfig,
  TinkerSettingsSchema,
  tinkerSettingsFromConfig,
  trainingBackendFromConfig,
} from "./config.js";
export {
  type CoefficientRow,
  datumTokens,
  exactGradientData,
  forwardDatum,
  serverCoefficients,
  sumCrossEntropyData,
  TINKER_LOSS_CONVENTIONS,
  type TinkerLossConvention,
} from "./gradients.js";
export {
  TINKER_STATE_FILE,
  type TinkerBackendSettings,
  type TinkerCheckpointState,
  TinkerPolicyTrainer,
  tinkerBackend,
  tinkerCheckpointState,
} from "./trainer.js";
