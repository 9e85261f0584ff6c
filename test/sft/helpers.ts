// Shared set-up for the SFT tests: a tiny byte-tokenizer Qwen3 checkpoint and small chat sets on disk.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { openDataWriter } from "../../src/data/io.js";
import { saveCheckpoint } from "../../src/model/checkpoint.js";
import { tinyQwen3Config } from "../../src/model/config.js";
import { Qwen3Model } from "../../src/model/qwen3.js";
import { ByteTokenizer, type Tokenizer } from "../../src/model/tokenizer.js";
import { SftConfigSchema } from "../../src/sft/config.js";
import { encodeConversation, rowConversation, type SftExample } from "../../src/sft/data.js";
import { smallQwen3 } from "../model/qwen3-helpers.js";

export const QWEN3_TEMPLATE = JSON.parse(
  readFileSync(join(import.meta.dirname, "fixtures/qwen3-mask/tokenizer_config.json"), "utf8"),
).chat_template as string;

export function tempDir(t: { after: (fn: () => void) => void }, prefix = "klear-sft-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A byte tokenizer with Qwen's chat tokens, using Qwen3's own chat template unless told otherwise. */
export function byteTokenizer(
  chatTemplate: string | undefined = QWEN3_TEMPLATE,
  eosToken?: string,
): ByteTokenizer {
  return new ByteTokenizer({ chatTemplate, eosToken });
}

/** Writes a randomly initialised tiny Qwen3 checkpoint and returns its folder. */
export async function tinyCheckpoint(
  dir: string,
  opts: {
    chatTemplate?: string;
    seed?: number;
    hiddenSize?: number;
    layers?: number;
    eosToken?: string;
  } = {},
): Promise<string> {
  const tokenizer = byteTokenizer(opts.chatTemplate, opts.eosToken);
  const config = tinyQwen3Config({
    vocabSize: tokenizer.vocabSize,
    hiddenSize: opts.hiddenSize ?? 32,
    intermediateSize: 64,
    numHiddenLayers: opts.layers ?? 1,
    numAttentionHeads: 2,
    numKeyValueHeads: 1,
    headDim: 16,
    maxPositionEmbeddings: 1024,
  });
  const model = Qwen3Model.create(config, { seed: opts.seed ?? 3 });
  const path = join(dir, "init");
  await saveCheckpoint(path, model, tokenizer);
  return path;
}

/** A small arithmetic chat set: the answer follows a <think> step, so a model can learn it quickly. */
export function additionProblems(n: number, seed = 0): { q: string; think: string; a: string }[] {
  const out = [];
  for (let i = 0; i < n; i++) {
    const a = (i * 7 + seed * 3) % 10;
    const b = (i * 3 + seed) % 10;
    out.push({ q: `What is ${a}+${b}?`, think: `${a}+${b}=${a + b}`, a: `${a + b}` });
  }
  return out;
}

export type RowFormat = "messages" | "conversations" | "prompt-completion";

export function chatRows(format: RowFormat, n: number, seed = 0): Record<string, unknown>[] {
  return additionProblems(n, seed).map(({ q, think, a }) => {
    if (format === "messages") {
      return {
        messages: [
          { role: "user", content: q },
          { role: "assistant", content: a, reasoning_content: think },
        ],
      };
    }
    if (format === "conversations") {
      return {
        system: "Add.",
        conversations: [
          { from: "human", value: q },
          { from: "gpt", value: `<think>\n${think}\n</think>\n\n${a}` },
        ],
      };
    }
    return { prompt: q, completion: `<think>\n${think}\n</think>\n\n${a}` };
  });
}

export function writeJsonl(path: string, rows: readonly unknown[]): string {
  writeFileSync(path, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");
  return path;
}

export function writeJsonlGz(path: string, rows: readonly unknown[]): string {
  writeFileSync(path, gzipSync(rows.map((r) => JSON.stringify(r)).join("\n") + "\n"));
  return path;
}

export async function writeParquet(path: string, rows: readonly Record<string, unknown>[]): Promise<string> {
  const w = await openDataWriter(path);
  for (const r of rows) await w.write(r);
  await w.close();
  return path;
}

/** `messages` rows of varied lengths, every third one multi-turn (an untrained user turn between two assistant turns). */
export function multiTurnRows(n: number): Record<string, unknown>[] {
  return chatRows("messages", n).map((r, i) => {
    if (i % 3 !== 1) return r;
    const m = r.messages as { role: string; content: string }[];
    return {
      messages: [
        ...m,
        { role: "user", content: "Twice that?" },
        { role: "assistant", content: "x".repeat(i) },
      ],
    };
  });
}

/** `multiTurnRows` encoded with the chat template, as `klear sft` reads them. */
export function multiTurnExamples(tok: Tokenizer, n: number): SftExample[] {
  const fields = SftConfigSchema.parse({}).data.fields;
  return multiTurnRows(n).map((r, i) => {
    const e = encodeConversation(tok, rowConversation(r, "auto", fields), {
      template: "chat",
      trainOn: "all-assistant",
      maxTokens: 400,
      overLong: "truncate",
    });
    return { ...e, source: "s", where: `row ${i}` };
  });
}

/** A small random Qwen3 (the model tests' shape) for `tok`'s vocabulary, in memory. */
export function tinyModel(tok: Tokenizer, seed = 5): Qwen3Model {
  return Qwen3Model.create(
    { ...smallQwen3(), vocabSize: tok.vocabSize, maxPositionEmbeddings: 1024 },
    { seed },
  );
}

/** A copy of every parameter's accumulated gradient. */
export function gradients(m: Qwen3Model): Map<string, Float32Array> {
  return new Map([...m.parameters()].map(([k, p]) => [k, Float32Array.from(p.grad)]));
}

/** The largest |a − b| over all parameters, each relative to its tensor's largest |a|. */
export function maxRelDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [k, x] of a) {
    const y = b.get(k) as Float32Array;
    let scale = 0;
    for (let i = 0; i < x.length; i++) scale = Math.max(scale, Math.abs(x[i]));
    for (let i = 0; i < x.length; i++)
      worst = Math.max(worst, Math.abs(x[i] - y[i]) / Math.max(scale, 1e-12));
  }
  return worst;
}
