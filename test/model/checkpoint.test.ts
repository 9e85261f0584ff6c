import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { nativeAvailable } from "../../src/engine/native.js";
import { SIMPLE_CHAT_TEMPLATE } from "../../src/model/chat.js";
import {
  type CheckpointableModel,
  loadCheckpoint,
  loadModel,
  saveCheckpoint,
} from "../../src/model/checkpoint.js";
import { type Qwen3Config, tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model, qwen3ParameterShapes } from "../../src/model/qwen3.js";
import { readSafetensorsHeader, roundToDtype, writeSafetensors } from "../../src/model/safetensors.js";
import { ByteTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";
import { KlearError } from "../../src/util/errors.js";
import { Rng } from "../../src/util/rng.js";

const QWEN3_SUBSET = join(import.meta.dirname, "../../fixtures/model/qwen3-tokenizer-subset");
const root = mkdtempSync(join(tmpdir(), "klear-checkpoint-"));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const fresh = () => join(root, `ckpt-${counter++}`);

const tokenizer = new ByteTokenizer();

function smallConfig(opts: { tie?: boolean; vocab?: number } = {}): Qwen3Config {
  return tinyQwen3Config({
    vocabSize: opts.vocab ?? 272,
    hiddenSize: 32,
    intermediateSize: 48,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 8,
    tieWordEmbeddings: opts.tie ?? false,
  });
}

/** A model-shaped object with random weights: saving needs only config + parameters(). */
function randomModel(config: Qwen3Config, seed = 1): CheckpointableModel {
  // xorshift32: a big embedding fills in milliseconds, which a Gaussian generator does not.
  let state = new Rng(seed).nextU32() | 1;
  const params = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const [name, shape] of qwen3ParameterShapes(config)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      data[i] = ((state >>> 0) / 2 ** 32 - 0.5) * 2;
    }
    params.set(name, { data, shape });
  }
  return { config, parameters: () => params };
}

function readJson(path: string) {
  return JSON.parse(readFileSync(path, "utf8"));
}

function rejectsWith(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof KlearError, `expected KlearError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

describe("checkpoint round trips", () => {
  it("f32: loads back bit-identical, with an HF-shaped folder", async () => {
    const config = smallConfig();
    const model = randomModel(config);
    const dir = fresh();
    await saveCheckpoint(dir, model, tokenizer);
    assert.deepEqual(readdirSync(dir).sort(), [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    assert.deepEqual(
      readdirSync(root).filter((f) => f.startsWith(".")),
      [],
      "no temporary folder left",
    );
    const cfg = readJson(join(dir, "config.json"));
    assert.deepEqual(cfg.architectures, ["Qwen3ForCausalLM"]);
    assert.equal(cfg.model_type, "qwen3");
    assert.equal(cfg.torch_dtype, "float32");
    assert.equal(cfg.vocab_size, 272);
    assert.equal(cfg.head_dim, 8);
    assert.equal(cfg.tie_word_embeddings, false);
    assert.equal(cfg.eos_token_id, tokenizer.eosTokenId);
    const gen = readJson(join(dir, "generation_config.json"));
    assert.equal(gen.eos_token_id, tokenizer.eosTokenId);
    assert.equal(gen.pad_token_id, tokenizer.padTokenId);
    assert.equal(readJson(join(dir, "tokenizer_config.json")).chat_template, SIMPLE_CHAT_TEMPLATE);
    assert.deepEqual((await readSafetensorsHeader(join(dir, "model.safetensors"))).metadata, {
      format: "pt",
    });

    const back = await loadCheckpoint(dir);
    for (const key of [
      "vocabSize",
      "hiddenSize",
      "numHiddenLayers",
      "headDim",
      "tieWordEmbeddings",
    ] as const) {
      assert.equal(back.config[key], config[key], key);
    }
    assert.deepEqual([...back.tensors.keys()].sort(), [...model.parameters().keys()].sort());
    for (const [name, p] of model.parameters()) {
      assert.deepEqual(Buffer.from(back.tensors.get(name)!.buffer), Buffer.from(p.data.buffer), name);
      assert.deepEqual(back.shapes.get(name), p.shape);
    }
    assert.equal(back.tokenizer.kind, "byte");
    assert.equal(back.tokenizer.chatTemplate, SIMPLE_CHAT_TEMPLATE);
    assert.deepEqual(back.tokenizer.encode("<|im_start|>héllo"), tokenizer.encode("<|im_start|>héllo"));
  });

  it("tied embeddings: saved without lm_head.weight (as HF), loaded either way", async () => {
    const config = smallConfig({ tie: true });
    const model = randomModel(config, 2);
    const dir = fresh();
    await saveCheckpoint(dir, model, tokenizer);
    const header = await readSafetensorsHeader(join(dir, "model.safetensors"));
    assert.ok(!header.tensors.has("lm_head.weight"));
    assert.equal(readJson(join(dir, "config.json")).tie_word_embeddings, true);
    const back = await loadCheckpoint(dir);
    assert.ok(!back.tensors.has("lm_head.weight"));

    // Some exporters keep a copy of the tied head: it loads and is ignored.
    const params = new Map(model.parameters());
    params.set("lm_head.weight", params.get("model.embed_tokens.weight")!);
    await writeSafetensors(join(dir, "model.safetensors"), params);
    assert.equal((await loadCheckpoint(dir)).tensors.size, model.parameters().size);
  });

  for (const dtype of ["bfloat16", "float16"] as const) {
    it(`${dtype}: loads values equal to the rounded originals`, async () => {
      const model = randomModel(smallConfig(), 3);
      const dir = fresh();
      await saveCheckpoint(dir, model, tokenizer, { dtype });
      assert.equal(readJson(join(dir, "config.json")).torch_dtype, dtype);
      const back = await loadCheckpoint(dir);
      for (const [name, p] of model.parameters()) {
        assert.deepEqual(back.tensors.get(name), roundToDtype(p.data, dtype), name);
        assert.equal(back.storedDtypes.get(name), dtype === "bfloat16" ? "BF16" : "F16");
      }
    });
  }

  it("sharded: several files plus an index, loaded bit-identical", async () => {
    const model = randomModel(smallConfig(), 4);
    const dir = fresh();
    await saveCheckpoint(dir, model, tokenizer, { maxShardSize: 20_000 });
    const files = readdirSync(dir);
    assert.ok(files.includes("model.safetensors.index.json"));
    assert.ok(!files.includes("model.safetensors"));
    assert.ok(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length >= 3, String(files));
    const back = await loadCheckpoint(dir);
    for (const [name, p] of model.parameters()) assert.deepEqual(back.tensors.get(name), p.data, name);
  });

  it("overwrites an existing checkpoint only when the new one is complete", async () => {
    const dir = fresh();
    const first = randomModel(smallConfig(), 5);
    await saveCheckpoint(dir, first, tokenizer);
    const broken: CheckpointableModel = {
      config: first.config,
      parameters: () => new Map([["model.norm.weight", { data: new Float32Array(3), shape: [32] }]]),
    };
    await assert.rejects(saveCheckpoint(dir, broken, tokenizer), /has 3 values but shape \[32\]/);
    const back = await loadCheckpoint(dir);
    assert.deepEqual(
      back.tensors.get("model.norm.weight"),
      first.parameters().get("model.norm.weight")!.data,
    );
    assert.deepEqual(
      readdirSync(root).filter((f) => f.startsWith(".")),
      [],
      "failed save cleaned up",
    );
    const second = randomModel(smallConfig(), 6);
    await saveCheckpoint(`${dir}/`, second, tokenizer);
    assert.deepEqual(
      (await loadCheckpoint(dir)).tensors.get("model.norm.weight"),
      second.parameters().get("model.norm.weight")!.data,
    );
  });

  it("keeps an HF BPE tokenizer's files and template as they were", async () => {
    const qwenTok = await loadTokenizer(QWEN3_SUBSET);
    const dir = fresh();
    await saveCheckpoint(dir, randomModel(smallConfig({ vocab: 151936, tie: true }), 7), qwenTok, {
      dtype: "bfloat16",
    });
    const back = await loadCheckpoint(dir);
    assert.equal(back.tokenizer.kind, "bpe");
    assert.equal(back.tokenizer.chatTemplate, qwenTok.chatTemplate);
    assert.deepEqual(back.tokenizer.encode("Hello, world!"), qwenTok.encode("Hello, world!"));
    assert.deepEqual(readJson(join(dir, "generation_config.json")).eos_token_id, 151645);
  });

  it("loadModel builds a Qwen3Model whose log-probs equal the saved model's", async (t) => {
    if (!nativeAvailable()) {
      t.skip("native addon not built (npm run build:native)");
      return;
    }
    const config = smallConfig({ tie: true });
    const model = Qwen3Model.create(config, { seed: 11 });
    const dir = fresh();
    await saveCheckpoint(dir, model, tokenizer);
    const loaded = await loadModel(dir);
    const tokens = new Int32Array(tokenizer.encode("<|im_start|>user\n2+2?<|im_end|>"));
    const targets = new Int32Array(tokens.length).fill(-1);
    for (let i = 0; i + 1 < tokens.length; i++) targets[i] = tokens[i + 1];
    const batch = { tokens, targets, batchSize: 1, seqLen: tokens.length };
    const a = model.logprobs(batch).logp;
    const b = loaded.model.logprobs(batch).logp;
    assert.deepEqual(b, a);
    assert.equal(loaded.tokenizer.eosTokenId, tokenizer.eosTokenId);
  });
});

describe("checkpoint bad input", () => {
  let good: string;
  const goodCheckpoint = async () => {
    if (!good) {
      good = fresh();
      await saveCheckpoint(good, randomModel(smallConfig(), 9), tokenizer);
    }
    return good;
  };
  const copyOfGood = async () => {
    const src = await goodCheckpoint();
    const dir = fresh();
    const { cpSync } = await import("node:fs");
    cpSync(src, dir, { recursive: true });
    return dir;
  };

  it("missing folder", async () => {
    await assert.rejects(
      loadModel(join(root, "nope")),
      rejectsWith("CHECKPOINT_MISSING", /nope: checkpoint folder not found/),
    );
  });

  it("a file instead of a folder", async () => {
    const file = join(root, "a-file");
    writeFileSync(file, "x");
    await assert.rejects(
      loadCheckpoint(file),
      rejectsWith("CHECKPOINT_MISSING", /is a file, not a checkpoint folder/),
    );
  });

  it("missing config.json", async () => {
    const dir = await copyOfGood();
    rmSync(join(dir, "config.json"));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("CHECKPOINT_CONFIG_MISSING", /config\.json: config\.json not found/),
    );
  });

  it("config.json that is not JSON", async () => {
    const dir = await copyOfGood();
    writeFileSync(join(dir, "config.json"), "{");
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("CHECKPOINT_INVALID", /config\.json: config\.json is not valid JSON/),
    );
  });

  it("unsupported architecture", async () => {
    const dir = await copyOfGood();
    const cfg = readJson(join(dir, "config.json"));
    writeFileSync(
      join(dir, "config.json"),
      JSON.stringify({ ...cfg, architectures: ["LlamaForCausalLM"], model_type: "llama" }),
    );
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("MODEL_UNSUPPORTED_ARCHITECTURE", /config\.json: unsupported model .*LlamaForCausalLM/),
    );
  });

  it("tensor shapes that do not match config.json", async () => {
    const dir = await copyOfGood();
    const cfg = readJson(join(dir, "config.json"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, intermediate_size: 64 }));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith(
        "CHECKPOINT_TENSOR_SHAPE",
        /model\.safetensors: tensor model\.layers\.0\.mlp\.gate_proj\.weight has shape \[48, 32\] but .*config\.json implies \[64, 32\]/,
      ),
    );
  });

  it("missing tensors (more layers than the weights hold; untied head absent)", async () => {
    const dir = await copyOfGood();
    const cfg = readJson(join(dir, "config.json"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 3 }));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("CHECKPOINT_TENSOR_MISSING", /lack 11 tensor\(s\) the config needs: model\.layers\.2\./),
    );
    const tiedDir = fresh();
    await saveCheckpoint(tiedDir, randomModel(smallConfig({ tie: true })), tokenizer);
    const tiedCfg = readJson(join(tiedDir, "config.json"));
    writeFileSync(join(tiedDir, "config.json"), JSON.stringify({ ...tiedCfg, tie_word_embeddings: false }));
    await assert.rejects(
      loadCheckpoint(tiedDir),
      rejectsWith(
        "CHECKPOINT_TENSOR_MISSING",
        /lm_head\.weight \(.*set it true if the model shares its embedding\)/,
      ),
    );
  });

  it("tensors the model does not have", async () => {
    const dir = await copyOfGood();
    const cfg = readJson(join(dir, "config.json"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, num_hidden_layers: 1 }));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("CHECKPOINT_TENSOR_UNEXPECTED", /model\.layers\.1\./),
    );
  });

  it("a tokenizer that does not fit the vocab size (load and save)", async () => {
    const dir = await copyOfGood();
    const cfg = readJson(join(dir, "config.json"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...cfg, vocab_size: 200 }));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith(
        "TOKENIZER_VOCAB_MISMATCH",
        /tokenizer\.json: the tokenizer has 261 ids but the model's vocab_size is 200/,
      ),
    );
    await assert.rejects(
      saveCheckpoint(fresh(), randomModel(smallConfig({ vocab: 256 })), tokenizer),
      rejectsWith("TOKENIZER_VOCAB_MISMATCH", /261 ids but the model's vocab_size is 256/),
    );
  });

  it("missing tokenizer.json", async () => {
    const dir = await copyOfGood();
    rmSync(join(dir, "tokenizer.json"));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("TOKENIZER_MISSING", /tokenizer\.json: tokenizer\.json not found/),
    );
  });

  it("missing, truncated or corrupt weights name the file", async () => {
    const dir = await copyOfGood();
    const weights = join(dir, "model.safetensors");
    const bytes = readFileSync(weights);
    writeFileSync(weights, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("SAFETENSORS_CORRUPT", /model\.safetensors: .*truncated/),
    );
    writeFileSync(
      weights,
      Buffer.concat([bytes.subarray(0, 8), Buffer.from("garbage!"), bytes.subarray(16)]),
    );
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("SAFETENSORS_CORRUPT", /model\.safetensors: header is not valid/),
    );
    rmSync(weights);
    assert.ok(!existsSync(weights));
    await assert.rejects(
      loadCheckpoint(dir),
      rejectsWith("SAFETENSORS_MISSING", /no model\.safetensors or model\.safetensors\.index\.json/),
    );
  });

  it("an unknown checkpoint dtype", async () => {
    await assert.rejects(
      saveCheckpoint(fresh(), randomModel(smallConfig()), tokenizer, { dtype: "int8" as never }),
      /unknown checkpoint dtype "int8"/,
    );
  });
});
