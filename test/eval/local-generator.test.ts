import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ReferenceBackend } from "../../src/engine/reference.js";
import {
  BENCHMARKS,
  ChatTemplate,
  type EvalScorer,
  evaluate,
  type LoadedBenchmark,
  LocalEngineGenerator,
} from "../../src/eval/index.js";

const MODEL = join(import.meta.dirname, "..", "..", "fixtures", "model", "hf-tiny-qwen3");
const root = mkdtempSync(join(tmpdir(), "klear-eval-local-"));
after(() => rmSync(root, { recursive: true, force: true }));

const bench: LoadedBenchmark = {
  spec: BENCHMARKS.gsm8k,
  source: ["test"],
  problems: [
    { id: "a", kind: "math", question: "1+1?", answer: "2" },
    { id: "b", kind: "math", question: "2+2?", answer: "4" },
  ],
};

const scorer: EvalScorer = {
  async score(_p, response) {
    return { score: 0, correct: false, extracted: response.slice(0, 3), reason: "" };
  },
};

test("the local engine generates through evaluate(), reproducibly per sample seed", async () => {
  const run = async (out: string) => {
    // The float64 reference backend: no native build needed, and the tiny model is cheap either way.
    const generator = await LocalEngineGenerator.load(MODEL, { backend: new ReferenceBackend() });
    return evaluate({
      benchmarks: [bench],
      generator,
      scorer,
      outDir: join(root, out),
      n: 3,
      promptTemplate: "raw",
      sampling: { temperature: 1, topP: 1, maxTokens: 8 },
      model: "tiny",
      bootstrap: 10,
      writeReport: false,
      progress: { silent: true },
    });
  };
  const a = await run("a");
  assert.equal(a.generated, 6);
  assert.equal(a.failed, 0);
  const b = await run("b");
  assert.deepEqual(a.results, b.results);
  const lens = a.results.benchmarks[0].perProblem.map((p) => p.meanLength);
  assert.ok(
    lens.every((l) => l > 0 && l <= 8),
    String(lens),
  );
});

test("the model's chat template renders prompts for /v1/completions", async () => {
  const t = await ChatTemplate.load(MODEL);
  assert.equal(
    t.apply([{ role: "user", content: "hi" }]),
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  );
  await assert.rejects(ChatTemplate.load(join(root, "nope")), /not a folder/);
});
