import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ReferenceBackend } from "../../src/engine/reference.js";
import {
  BENCHMARKS,
  type EvalGenResult,
  type EvalScorer,
  evaluate,
  type LoadedBenchmark,
  LocalEngineGenerator,
  loadEvalChatTemplate,
} from "../../src/eval/index.js";
import { loadTokenizer, readSafetensors, writeSafetensors } from "../../src/model/index.js";

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
  const t = await loadEvalChatTemplate(MODEL);
  assert.equal(
    t.apply([{ role: "user", content: "hi" }]),
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  );
  await assert.rejects(loadEvalChatTemplate(join(root, "nope")), /not a folder/);
});

test("--no-enable-thinking reaches the template: the generation prompt ends with an empty think block", async () => {
  const t = await loadEvalChatTemplate(MODEL, { enableThinking: false });
  assert.equal(
    t.apply([{ role: "user", content: "hi" }]),
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  );
});

test("chat_template.jinja takes precedence over tokenizer_config.json's template", async () => {
  const dir = join(root, "jinja");
  cpSync(MODEL, dir, { recursive: true });
  const configPath = join(dir, "tokenizer_config.json");
  const config = JSON.parse(readFileSync(configPath, "utf8"));
  writeFileSync(configPath, JSON.stringify({ ...config, chat_template: "from tokenizer_config.json" }));
  writeFileSync(
    join(dir, "chat_template.jinja"),
    "{%- for m in messages %}[{{ m.role }}]{{ m.content }}{%- endfor %}{%- if add_generation_prompt %}[assistant]{%- endif %}",
  );
  const t = await loadEvalChatTemplate(dir);
  assert.equal(t.apply([{ role: "user", content: "hi" }]), "[user]hi[assistant]");
});

test("sampling a padding id past the tokenizer's vocabulary does not crash generation", async () => {
  // A copy of the tiny model whose padding rows (tied embeddings, so also the output head) are huge and come
  // in ± pairs: whatever the hidden state, one of each pair has a dominating logit, so greedy picks padding.
  const dir = join(root, "padded");
  cpSync(MODEL, dir, { recursive: true });
  const tokenizerVocab = (await loadTokenizer(dir)).vocabSize;
  const shard = join(dir, "model-00001-of-00003.safetensors");
  const tensors = await readSafetensors(shard);
  const embed = tensors.get("model.embed_tokens.weight")!;
  const [modelVocab, hidden] = embed.shape;
  assert.ok(modelVocab > tokenizerVocab + 1, "the fixture's vocabulary is padded past its tokenizer's");
  for (let id = tokenizerVocab; id < modelVocab; id++) {
    const pair = (id - tokenizerVocab) >> 1;
    const sign = (id - tokenizerVocab) % 2 === 0 ? 1 : -1;
    for (let j = 0; j < hidden; j++)
      embed.data[id * hidden + j] = sign * 1000 * Math.sin(7 * pair + 3 * j + 1);
  }
  await writeSafetensors(shard, tensors, { dtype: "bfloat16" });

  const generator = await LocalEngineGenerator.load(dir, { backend: new ReferenceBackend() });
  const results: (EvalGenResult | Error)[] = [];
  await generator.generate(
    [{ messages: [{ role: "user", content: "hi" }], seed: 1 }],
    { temperature: 0, topP: 1, maxTokens: 6 },
    (_i, r) => {
      results.push(r);
    },
  );
  const [r] = results;
  assert.ok(!(r instanceof Error), String(r));
  assert.equal(r.completionTokens, 6);
  // Padding ids decode to nothing, as HF's tokenizers do.
  assert.equal(r.text, "");
});
