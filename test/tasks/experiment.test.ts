import assert from "node:assert/strict";
import { test } from "node:test";
import { recipeExperiment } from "../../src/tasks/experiment-recipe.js";
import { recipeRlConfig, resolveRecipeDemoConfig } from "../../src/tasks/recipe-demo-config.js";

test("the experiment adapter: RL config with the loss and seed swapped, the demo's eval sampling", () => {
  const config = resolveRecipeDemoConfig({ preset: "smoke" });
  const e = recipeExperiment(config);
  const c = e.rlConfig("/ckpt", "cispo", {}, 7);
  assert.equal(c.loss.name, "cispo");
  assert.equal(c.seed, 7);
  assert.equal(c.init, "/ckpt");
  assert.equal(c.eval.temperature, config.eval.temperature);
  assert.deepEqual(recipeRlConfig(config, "/ckpt").task.testSize, config.data.heldOutSize);
});
