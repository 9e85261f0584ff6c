// Public API of src/sft (re-exported from the package root).
export {
  describeSftConfig,
  parseSftConfig,
  resolveSftConfig,
  SFT_FORMATS,
  SFT_PRESET_NAMES,
  SFT_PRESETS,
  type SftConfig,
  SftConfigSchema,
  type SftFormat,
  type SftPresetName,
  type SftSource,
} from "./config.js";
export {
  checkSomeRowsKept,
  describeSummary,
  encodeConversation,
  readSftSource,
  rowConversation,
  type SftDataSummary,
  type SftDropCause,
  type SftExample,
} from "./data.js";
export { buildBatch, epochRows, packRows, type SftBatch } from "./pack.js";
export {
  heldOutLoss,
  runSft,
  type SftOptions,
  type SftResult,
  type SftStepMetrics,
  sftResultLine,
  sftStepGradients,
} from "./trainer.js";
