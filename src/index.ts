/**
 * The klear library: everything the CLI does, importable from TypeScript.
 * Each module's index.ts lists its public API; names must be unique across modules.
 */

export * from "./backend/index.js";
export * from "./data/index.js";
export * from "./engine/index.js";
export * from "./eval/index.js";
export * from "./model/index.js";
export * from "./report/index.js";
export * from "./rewards/code/index.js";
export * from "./rewards/index.js";
export * from "./rewards/math/index.js";
export * from "./rl/index.js";
export * from "./rl/objectives/index.js";
export * from "./rollout/index.js";
export * from "./rows/index.js";
export * from "./sft/index.js";
export * from "./store/index.js";
export * from "./tasks/index.js";
export { ConfigError, KlearError } from "./util/errors.js";
export { Rng } from "./util/rng.js";
