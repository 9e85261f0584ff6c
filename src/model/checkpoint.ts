/**
 * Checkpoints as Hugging Face folders: config.json, model.safetensors (or shards + index), tokenizer.json,
 * tokenizer_config.json and generation_config.json — what `AutoModelForCausalLM.from_pretrained` and
 * `AutoTokenizer.from_pretrained` open unchanged. Saving builds the folder under a temporary name and renames
 * it into place, so a crash never leaves a half-written checkpoint.
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Backend } from "../engine/backend.js";
import { atomicWriteDir, atomicWriteFile } from "../util/atomic.js";
import { checkChoice, KlearError } from "../util/errors.js";
import { SIMPLE_CHAT_TEMPLATE } from "./chat.js";
import { parseQwen3Config, type Qwen3Config, qwen3ConfigToJson } from "./config.js";
import { Qwen3Model, qwen3ParameterShapes } from "./qwen3.js";
import {
  listSafetensorsFolder,
  readSafetensorsFolder,
  SAFETENSORS_WRITE_DTYPES,
  type SafetensorsDtype,
  type SafetensorsFolderEntry,
  type SafetensorsWriteDtype,
  type TensorToWrite,
  writeSafetensorsFolder,
} from "./safetensors.js";
import { checkTokenizerFitsVocab, loadTokenizer, type Tokenizer } from "./tokenizer.js";

export const CHECKPOINT_CONFIG_FILE = "config.json";
export const CHECKPOINT_GENERATION_CONFIG_FILE = "generation_config.json";

/** What saveCheckpoint needs of a model: its config and HF-named float32 parameters. */
export interface CheckpointableModel {
  readonly config: Qwen3Config;
  parameters(): Map<string, { data: Float32Array; shape: readonly number[] }>;
}

export interface SaveCheckpointOptions {
  /** Stored dtype (HF torch_dtype names). Default float32, which round-trips bit-identical. */
  dtype?: SafetensorsWriteDtype;
  /** Shard the weights when larger than this ("5GB" as HF by default; bytes or "500MB"). */
  maxShardSize?: number | string;
  /**
   * Merged over the defaults klear writes to generation_config.json (eos/pad/bos ids). Pass a loaded
   * checkpoint's `generationConfig` to keep a base model's sampling defaults (Qwen3 ships temperature/top_p/top_k).
   */
  generationConfig?: Record<string, unknown>;
}

/** Weights HF checkpoints sometimes carry that hold no learned state (recomputed from the config). */
function isIgnorableTensor(name: string): boolean {
  return name.endsWith("rotary_emb.inv_freq");
}

function idsEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Writes `model` and `tokenizer` as an HF-style checkpoint folder at `dir`, atomically (an existing folder is
 * replaced only once the new one is complete). Tied embeddings are written as HF does: without lm_head.weight.
 */
export async function saveCheckpoint(
  dir: string,
  model: CheckpointableModel,
  tokenizer: Tokenizer,
  opts: SaveCheckpointOptions = {},
): Promise<void> {
  const dtype = checkChoice("checkpoint dtype", opts.dtype ?? "float32", SAFETENSORS_WRITE_DTYPES);
  const config = model.config;
  checkTokenizerFitsVocab(tokenizer, config.vocabSize, join(dir, "tokenizer.json"));
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, p] of model.parameters()) {
    if (config.tieWordEmbeddings && name === "lm_head.weight") continue;
    tensors.set(name, { data: p.data, shape: p.shape });
  }
  const configJson: Record<string, unknown> = {
    ...qwen3ConfigToJson(config),
    torch_dtype: dtype,
    bos_token_id: config.bosTokenId ?? tokenizer.bosTokenId ?? null,
    eos_token_id: config.eosTokenId ?? tokenizer.eosTokenId,
  };
  // Newer transformers write "dtype"; keep the two in agreement when the source config had it.
  if ("dtype" in configJson) configJson.dtype = dtype;
  const files = tokenizer.toFiles();
  const tokenizerConfig = { ...files.tokenizerConfig };
  // A checkpoint always carries a template, so HF's apply_chat_template renders prompts as klear does.
  if (tokenizerConfig.chat_template === undefined && tokenizer.chatTemplate === undefined) {
    tokenizerConfig.chat_template = SIMPLE_CHAT_TEMPLATE;
  }
  const eosIds = configJson.eos_token_id;
  const generationConfig: Record<string, unknown> = {
    ...(configJson.bos_token_id !== null ? { bos_token_id: configJson.bos_token_id } : {}),
    eos_token_id:
      Array.isArray(eosIds) || idsEqual(eosIds, tokenizer.eosTokenId)
        ? eosIds
        : [eosIds, tokenizer.eosTokenId],
    pad_token_id: tokenizer.padTokenId,
    ...opts.generationConfig,
  };
  // resolve() drops a trailing slash, which would otherwise put the temporary folder inside the parent's name.
  await atomicWriteDir(resolve(dir), async (tmp) => {
    await writeSafetensorsFolder(tmp, tensors, {
      dtype,
      maxShardSize: opts.maxShardSize,
      metadata: { format: "pt" },
    });
    const json = (v: unknown) => `${JSON.stringify(v, null, 2)}\n`;
    await atomicWriteFile(join(tmp, CHECKPOINT_CONFIG_FILE), json(configJson));
    await atomicWriteFile(join(tmp, "tokenizer.json"), JSON.stringify(files.tokenizerJson));
    await atomicWriteFile(join(tmp, "tokenizer_config.json"), json(tokenizerConfig));
    await atomicWriteFile(join(tmp, CHECKPOINT_GENERATION_CONFIG_FILE), json(generationConfig));
  });
}

async function readJson(path: string, what: string): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new KlearError(
      "CHECKPOINT_INVALID",
      `${path}: ${what} is not valid JSON (${(e as Error).message})`,
      `fix or re-create ${what}`,
      { cause: e },
    );
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new KlearError(
      "CHECKPOINT_INVALID",
      `${path}: ${what} is not a JSON object`,
      `fix or re-create ${what}`,
    );
  }
  return parsed as Record<string, unknown>;
}

function checkFolder(dir: string): void {
  if (!existsSync(dir)) {
    throw new KlearError(
      "CHECKPOINT_MISSING",
      `${dir}: checkpoint folder not found`,
      "check the path (a folder with config.json and model.safetensors)",
    );
  }
  if (!statSync(dir).isDirectory()) {
    throw new KlearError(
      "CHECKPOINT_MISSING",
      `${dir}: is a file, not a checkpoint folder`,
      "point at the folder that holds config.json and model.safetensors",
    );
  }
}

/** Reads and validates a checkpoint folder's config.json. */
export async function readCheckpointConfig(dir: string): Promise<Qwen3Config> {
  checkFolder(dir);
  const path = join(dir, CHECKPOINT_CONFIG_FILE);
  if (!existsSync(path)) {
    throw new KlearError(
      "CHECKPOINT_CONFIG_MISSING",
      `${path}: config.json not found in the checkpoint folder`,
      "a checkpoint needs the config.json HF save_pretrained writes; copy it from the base model",
    );
  }
  return parseQwen3Config(await readJson(path, "config.json"), path);
}

export interface LoadedCheckpoint {
  config: Qwen3Config;
  tokenizer: Tokenizer;
  /** HF-named float32 tensors, validated against the config (a tied checkpoint has no lm_head.weight here). */
  tensors: Map<string, Float32Array>;
  shapes: Map<string, number[]>;
  /** The dtype each tensor was stored in, by name. */
  storedDtypes: Map<string, SafetensorsDtype>;
  /** generation_config.json, or {} when the folder has none. */
  generationConfig: Record<string, unknown>;
}

function describeShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Checks names and shapes from the headers alone, before any weight is read. */
function validateEntries(
  dir: string,
  config: Qwen3Config,
  entries: Map<string, SafetensorsFolderEntry>,
): Map<string, number[]> {
  const expected = qwen3ParameterShapes(config);
  const configPath = join(dir, CHECKPOINT_CONFIG_FILE);
  const missing = [...expected.keys()].filter((n) => !entries.has(n));
  if (missing.length > 0) {
    const tiedHint =
      missing.length === 1 && missing[0] === "lm_head.weight"
        ? ` (${configPath} says tie_word_embeddings false; set it true if the model shares its embedding)`
        : "";
    throw new KlearError(
      "CHECKPOINT_TENSOR_MISSING",
      `${dir}: safetensors files lack ${missing.length} tensor(s) the config needs: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""}${tiedHint}`,
      `use weights that match ${configPath} (num_hidden_layers, tie_word_embeddings)`,
    );
  }
  for (const [name, shape] of expected) {
    const entry = entries.get(name)!;
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new KlearError(
        "CHECKPOINT_TENSOR_SHAPE",
        `${entry.path}: tensor ${name} has shape ${describeShape(entry.shape)} but ${configPath} implies ${describeShape(shape)}`,
        `use the config.json these weights were saved with (vocab_size, hidden_size, heads, head_dim, intermediate_size)`,
      );
    }
  }
  const unexpected = [...entries.keys()].filter(
    (n) => !expected.has(n) && !isIgnorableTensor(n) && !(config.tieWordEmbeddings && n === "lm_head.weight"),
  );
  if (unexpected.length > 0) {
    throw new KlearError(
      "CHECKPOINT_TENSOR_UNEXPECTED",
      `${dir}: safetensors files hold tensor(s) a Qwen3ForCausalLM with this config does not have: ${unexpected.slice(0, 5).join(", ")}${unexpected.length > 5 ? ", …" : ""}`,
      `check that the weights belong to the model ${configPath} describes`,
    );
  }
  return expected;
}

/**
 * Reads a checkpoint folder without building a model: config, tokenizer, validated float32 tensors and the
 * generation config. Names and shapes are checked from the safetensors headers before any weight is read.
 */
export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const config = await readCheckpointConfig(dir);
  const tokenizer = await loadTokenizer(dir);
  checkTokenizerFitsVocab(tokenizer, config.vocabSize, join(dir, "tokenizer.json"));
  const entries = await listSafetensorsFolder(dir);
  const shapes = validateEntries(dir, config, entries);
  const loaded = await readSafetensorsFolder(dir, { names: shapes.keys(), entries });
  const tensors = new Map<string, Float32Array>();
  const storedDtypes = new Map<string, SafetensorsDtype>();
  for (const [name, t] of loaded) {
    tensors.set(name, t.data);
    storedDtypes.set(name, t.dtype);
  }
  const genPath = join(dir, CHECKPOINT_GENERATION_CONFIG_FILE);
  const generationConfig = existsSync(genPath) ? await readJson(genPath, "generation_config.json") : {};
  return { config, tokenizer, tensors, shapes, storedDtypes, generationConfig };
}

export interface LoadedModel {
  model: Qwen3Model;
  tokenizer: Tokenizer;
  config: Qwen3Config;
  generationConfig: Record<string, unknown>;
}

/** Loads an HF-style Qwen3 checkpoint folder (klear's or HF's own) into a trainable model. */
export async function loadModel(dir: string, opts: { backend?: Backend } = {}): Promise<LoadedModel> {
  const ckpt = await loadCheckpoint(dir);
  const model = Qwen3Model.fromTensors(ckpt.config, ckpt.tensors, dir, {
    backend: opts.backend,
    shapes: ckpt.shapes,
  });
  return { model, tokenizer: ckpt.tokenizer, config: ckpt.config, generationConfig: ckpt.generationConfig };
}
