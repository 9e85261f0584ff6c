import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { renderTrainingConversation } from "../../src/model/chat.js";
import { readMetrics, runPaths } from "../../src/store/run.js";
import { recipeResultLines, runRecipeDemo } from "../../src/tasks/recipe-demo.js";
import { recipeRlConfig, resolveRecipeDemoConfig } from "../../src/tasks/recipe-demo-config.js";
import { recipeSplit } from "../../src/tasks/recipe-problems.js";
import {
  RECIPE_CHAT_TEMPLATE,
  RewardCallCounter,
  recipePromptText,
  recipeRlTask,
  recipeTokenizer,
} from "../../src/tasks/recipe-task.js";

const sum = (rows: Record<string, unknown>[], key: string) =>
  rows.reduce((n, m) => n + (typeof m[key] === "number" ? (m[key] as number) : 0), 0);

test("the chat template: prompt = user text + newline; the assistant's think, answer and EOS are trained", () => {
  const tok = recipeTokenizer();
  assert.equal(tok.chatTemplate, RECIPE_CHAT_TEMPLATE);
  const problem = recipeSplit(0, 2).heldOut[0];
  assert.equal(recipePromptText(tok, problem), `${problem.prompt}\n`);
  const r = renderTrainingConversation(tok, [
    { role: "user", content: "Q" },
    { role: "assistant", content: "\\boxed{3}", reasoning_content: "1+2=3" },
  ]);
  assert.equal(r.text, "Q\n<think>1+2=3</think>\n\\boxed{3}<|endoftext|>");
  const trained = r.ids.filter((_, i) => r.assistantMask[i] === 1);
  assert.equal(
    tok.decode(trained),
    "<think>1+2=3</think>\n\\boxed{3}<|endoftext|>".replace("<|endoftext|>", tok.decode([tok.eosTokenId])),
  );
});

test("smoke demo: data, SFT, eval harness, RL, eval, report; checker calls counted; resume is a no-op once done", async () => {
  const dir = mkdtempSync(join(tmpdir(), "klear-recipe-demo-"));
  try {
    const config = resolveRecipeDemoConfig({ preset: "smoke" });
    const logs: string[] = [];
    const r = await runRecipeDemo(config, { out: join(dir, "run"), quiet: true, log: (l) => logs.push(l) });
    assert.equal(r.interrupted, false);
    assert.ok(existsSync(r.report), "report written");
    assert.match(readFileSync(r.report, "utf8"), /<html/i);
    assert.ok(existsSync(join(r.runDir, "data", "sft.jsonl")));
    const row = JSON.parse(readFileSync(join(r.runDir, "data", "sft.jsonl"), "utf8").split("\n")[0]);
    assert.equal(row.messages[1].role, "assistant");
    assert.equal(typeof row.messages[1].reasoning_content, "string");
    assert.ok(r.evalRl, "evaluated after RL");
    assert.ok(existsSync(join(r.runDir, "eval-sft", "results.json")));
    // An untrained smoke model rarely writes a \\boxed{} answer or a program: the counts are there, maybe 0
    // (the e2e test's trained model calls both).
    const rlMetrics = readMetrics(runPaths(join(r.runDir, "rl")));
    const rows = rlMetrics.filter((m) => m.phase === "reward-calls");
    assert.ok(
      rows.length >= 1 && rows.every((m) => typeof m.sandboxCalls === "number"),
      "RL metrics carry the counts",
    );
    assert.equal(sum(rlMetrics, "verifierCalls") <= r.rewardCalls.verifierCalls, true);
    const lines = recipeResultLines(r, config.data.heldOutSize);
    assert.match(
      lines[lines.length - 1],
      /^RESULT demo klear=\S+ peer=\S+ unit=accuracy ratio=\S+ math_sft=\S+ math_rl=\S+ code_sft=\S+ code_rl=\S+ minutes=\S+$/,
    );
    assert.match(lines[0], /^RESULT demo-rl /);
    const again = await runRecipeDemo(config, {
      out: join(dir, "run"),
      resume: true,
      quiet: true,
      log: () => {},
    });
    assert.deepEqual(again.evalRl, r.evalRl);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the RL task scores teacher answers through the verifier and the sandbox, counting each call", async (t) => {
  const counter = new RewardCallCounter();
  const config = resolveRecipeDemoConfig({ preset: "smoke" });
  const task = await recipeRlTask({ seed: 0, ...config.data, heldOutSize: 12, counter })({
    config: recipeRlConfig(config, "/ckpt"),
    tokenizer: recipeTokenizer(),
  });
  const split = recipeSplit(0, 12, config.data);
  const byKind = (k: string) => task.heldOut.findIndex((_, i) => split.heldOut[i].kind === k);
  const m = byKind("math");
  const c = byKind("code");
  assert.ok(m >= 0 && c >= 0);
  assert.equal(task.heldOut[m].text, `${split.heldOut[m].prompt}\n`);
  const good = await task.score(task.heldOut[m], `<think>x</think>\n\\boxed{${split.heldOut[m].answer}}`, {
    seed: 1,
  });
  assert.deepEqual(good, { reward: 1, correct: true });
  const noThink = await task.score(task.heldOut[m], `\\boxed{${split.heldOut[m].answer}}`, { seed: 1 });
  assert.equal(noThink.correct, false, "Klear's think gate");
  const code = await Promise.resolve(
    task.score(task.heldOut[c], "<think>x</think>\n```python\nprint(1)\n```", { seed: 1 }),
  ).catch((e: Error) => e);
  if (code instanceof Error) {
    t.skip(`sandbox unavailable: ${code.message}`);
    return;
  }
  assert.equal(code.correct, false);
  assert.deepEqual(counter.snapshot(), { verifierCalls: 1, sandboxCalls: 1 });
});
