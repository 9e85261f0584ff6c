/**
 * The Tinker training backend: `runRl`'s `PolicyTrainer` seam over a Tinker server (hosted Tinker, or a
 * self-hosted SkyRL), so klear's loop, losses, filters and rewards drive weights that live on the server.
 *
 * One update, per mini-batch: each `forwardBackward` runs a server forward for the current log-probs
 * (reused when `logprobs` already scored the same tokens at the same weights), hands them to klear's loss
 * for the coefficients dLogp, and queues the exact-gradient datums (./gradients.ts). `optimizerStep` then
 * sends the queued forward_backward calls — at that point the step's datum count, which SkyRL divides by,
 * is known — followed by optim_step. Checkpoints save the server state (weights + AdamW moments) under a
 * name recorded in the folder's tinker.json; `openPolicy` on such a folder loads it into a fresh model.
 *
 * Not available through the API, refused with a clear error: training log-probs at a temperature other
 * than 1, entropy (the entropy bonus and entropy-ratio clipping), stop strings, repetition penalty and
 * min-p in sampling.
 */
import { existsSync, readFileSync } from "node:fs";
import { copyFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readCheckpointConfig } from "../../model/checkpoint.js";
import { loadTokenizer, type Tokenizer } from "../../model/tokenizer.js";
import type { Completion, GenerateParams, Generator } from "../../rollout/types.js";
import { mapConcurrent } from "../../util/concurrency.js";
import { ConfigError, KlearError } from "../../util/errors.js";
import type {
  LogprobOptions,
  LogprobSource,
  OptimizerStepOptions,
  OptimizerStepResult,
  PolicyOptimizerSettings,
  PolicyTrainer,
  SequenceLogprobs,
  TokenGradients,
  TrainingBackend,
  TrainingSequence,
} from "../types.js";
import {
  type LoraSettings,
  TinkerClient,
  type TinkerClientOptions,
  type TinkerClientStats,
  type TinkerModel,
} from "./client.js";
import {
  type CoefficientRow,
  datumTokens,
  exactGradientData,
  forwardDatum,
  sumCrossEntropyData,
  type TinkerLossConvention,
} from "./gradients.js";
import type { WireDatum } from "./proto.js";

/** The folder file that ties a klear checkpoint to the server state it saved. */
export const TINKER_STATE_FILE = "tinker.json";

export interface TinkerBackendSettings {
  client: TinkerClientOptions;
  /** The server's name for the base model; default: the absolute path of the checkpoint opened first. */
  baseModel?: string;
  lora: LoraSettings;
  /** How the server reduces its losses (see gradients.ts): `skyrl-jax` or `sum` (hosted Tinker). */
  lossConvention: TinkerLossConvention;
  /** Prompts sampled concurrently. */
  samplingConcurrency: number;
}

/** What a checkpoint folder's tinker.json records. */
export interface TinkerCheckpointState {
  baseModel: string;
  /** tinker://…/weights/… : LoRA weights and AdamW moments. */
  statePath: string;
  /** tinker://…/sampler_weights/… : the same weights for sampling. */
  samplerPath: string;
  lora: LoraSettings;
}

/** The server state a checkpoint folder recorded (its tinker.json), or null for a folder without one. */
export function tinkerCheckpointState(dir: string): TinkerCheckpointState | null {
  const path = join(dir, TINKER_STATE_FILE);
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as TinkerCheckpointState) : null;
}

function checkTemperature(opts: { temperature: number }, what: string): void {
  if (opts.temperature !== 1) {
    throw new ConfigError(
      `the Tinker API computes ${what} at temperature 1 only (asked: ${opts.temperature})`,
      "sample and train at rollout.temperature = 1 (Klear's setting), or use the local backend",
    );
  }
}

const sequenceKey = (s: TrainingSequence) => `${s.promptTokens.join(",")}|${s.responseTokens.join(",")}`;

async function serverLogprobs(
  model: TinkerModel,
  batch: readonly TrainingSequence[],
): Promise<Float64Array[]> {
  return responseLogprobs(
    await model.forward(batch.map((s) => forwardDatum(s.promptTokens, s.responseTokens))),
    batch,
  );
}

/** The response tokens' log-probs out of a forward (or forward_backward) answer for `batch`. */
function responseLogprobs(
  out: Awaited<ReturnType<TinkerModel["forward"]>>,
  batch: readonly TrainingSequence[],
): Float64Array[] {
  return batch.map((s, r) => {
    const { responseStart } = datumTokens(s.promptTokens, s.responseTokens);
    const all = out.outputs[r].logprobs;
    if (!all)
      throw new KlearError(
        "TINKER_PROTO_INVALID",
        "forward returned no logprobs",
        "check the server version",
      );
    return Float64Array.from(all.subarray(responseStart, responseStart + s.responseTokens.length));
  });
}

/**
 * Prompt i's seed: the server draws sample k of a request from seed + k (SkyRL, like vLLM), so prompts are
 * spaced n apart and no two samples of a batch share a stream (31-bit, non-negative).
 */
function promptSeed(seed: number, i: number, n: number): number {
  const m = 2 ** 31;
  return ((((Math.trunc(seed) % m) * 1_000_003) % m) + i * n + m) % m;
}

/** Samples through the server's sampler from a saved sampler checkpoint (or the base model). */
class TinkerGenerator implements Generator {
  constructor(
    private readonly client: TinkerClient,
    private readonly source: () => Promise<{ modelPath: string } | { baseModel: string }>,
    private readonly concurrency: number,
  ) {}

  async generate(prompts: number[][], params: GenerateParams): Promise<Completion[]> {
    if (
      (params.stopStrings?.length ?? 0) > 0 ||
      (params.repetitionPenalty ?? 1) !== 1 ||
      (params.minP ?? 0) !== 0
    ) {
      throw new ConfigError(
        "the Tinker sampler takes stop tokens, top-k and top-p only (no stop strings, repetition penalty or min-p)",
        "end responses with the EOS token, or sample from a vLLM server (rollout.server)",
      );
    }
    const source = await this.source();
    const n = params.n ?? 1;
    const perPrompt = await mapConcurrent(prompts, this.concurrency, (prompt, i) =>
      this.client.sample(source, prompt, {
        numSamples: n,
        maxTokens: params.maxNewTokens,
        temperature: params.temperature,
        topK: params.topK && params.topK > 0 ? params.topK : -1,
        topP: params.topP ?? 1,
        seed: params.seed === undefined ? undefined : promptSeed(params.seed, i, n),
        stopTokenIds: params.stopTokenIds,
      }),
    );
    const stop = new Set(params.stopTokenIds ?? []);
    // The sampler's log-probs are the raw model's only at temperature 1 without truncation; otherwise the
    // model's are unknown here (NaN), and the trainer's own forward gives the old log-probs anyway.
    const untouched =
      params.temperature === 1 && !(params.topK && params.topK > 0) && (params.topP ?? 1) === 1;
    return perPrompt.flatMap((seqs, promptIndex) =>
      seqs.map((s, sampleIndex) => {
        const logprobs = s.logprobs ?? new Array<number>(s.tokens.length).fill(Number.NaN);
        const ended = s.tokens.length > 0 && stop.has(s.tokens[s.tokens.length - 1]);
        return {
          promptIndex,
          sampleIndex,
          tokens: s.tokens,
          logprobs,
          modelLogprobs: untouched ? logprobs : logprobs.map(() => Number.NaN),
          ...(params.decode ? { text: params.decode(ended ? s.tokens.slice(0, -1) : s.tokens) } : {}),
          finishReason: ended ? "stop" : s.stopReason,
        } satisfies Completion;
      }),
    );
  }
}

/** Approximate LoRA parameter count (every linear layer of every block, plus the output layer). */
function loraParameterCount(
  config: Awaited<ReturnType<typeof readCheckpointConfig>>,
  lora: LoraSettings,
): number {
  const h = config.hiddenSize;
  const q = config.numAttentionHeads * config.headDim;
  const kv = config.numKeyValueHeads * config.headDim;
  const ff = config.intermediateSize;
  const attn = lora.trainAttn === false ? 0 : h + q + (h + kv) * 2 + q + h;
  const mlp = lora.trainMlp === false ? 0 : (h + ff) * 3;
  const unembed = lora.trainUnembed === false ? 0 : h + config.vocabSize;
  return lora.rank * ((attn + mlp) * config.numHiddenLayers + unembed);
}

export class TinkerPolicyTrainer implements PolicyTrainer {
  /** Bumped by every optimizer step: cached log-probs and the sampler export are per version. */
  private version = 0;
  private cache = new Map<string, Float64Array>();
  private cacheVersion = -1;
  private pending: CoefficientRow[][] = [];
  private exported: { version: number; path: string } | null = null;
  private saves = 0;
  readonly parameterCount: number;

  constructor(
    readonly client: TinkerClient,
    readonly model: TinkerModel,
    readonly tokenizer: Tokenizer,
    private readonly sourceDir: string,
    private readonly settings: TinkerBackendSettings,
    private readonly optimizer: PolicyOptimizerSettings,
    parameterCount: number,
  ) {
    this.parameterCount = parameterCount;
  }

  /** Every request's outcome so far (retries by cause, failures, time waiting on futures). */
  get requestStats(): TinkerClientStats {
    return this.client.stats;
  }

  sampler(): Generator {
    return new TinkerGenerator(this.client, () => this.samplerSource(), this.settings.samplingConcurrency);
  }

  /** Exports the current weights for the sampler once per version. */
  private async samplerSource(): Promise<{ modelPath: string }> {
    if (this.exported?.version !== this.version) {
      const path = await this.model.saveForSampler(`klear-v${this.version}-${Date.now().toString(36)}`);
      this.exported = { version: this.version, path };
    }
    return { modelPath: this.exported.path };
  }

  async logprobs(batch: readonly TrainingSequence[], opts: LogprobOptions): Promise<SequenceLogprobs[]> {
    checkTemperature(opts, "training log-probs");
    const logp = await serverLogprobs(this.model, batch);
    if (this.cacheVersion !== this.version) {
      this.cache.clear();
      this.cacheVersion = this.version;
    }
    for (let r = 0; r < batch.length; r++) this.cache.set(sequenceKey(batch[r]), logp[r]);
    // No entropy: the API returns none (the update then logs entropy as 0).
    return logp.map((l) => ({ logp: l }));
  }

  async forwardBackward(
    batch: readonly TrainingSequence[],
    opts: LogprobOptions,
    loss: (out: readonly SequenceLogprobs[]) => TokenGradients,
  ): Promise<void> {
    checkTemperature(opts, "training log-probs");
    if (opts.entropy) {
      throw new ConfigError(
        "the Tinker API returns no entropies, so losses that use them (entropy bonus, entropy-ratio clipping) cannot run on it",
        "set the loss's entropyCoeff to 0 and entropyRatioClip to null, or use the local backend",
      );
    }
    const cached = this.cacheVersion === this.version ? batch.map((s) => this.cache.get(sequenceKey(s))) : [];
    const logp =
      cached.length === batch.length && cached.every((l) => l !== undefined)
        ? (cached as Float64Array[])
        : await serverLogprobs(this.model, batch);
    const grads = loss(logp.map((l) => ({ logp: l })));
    if (grads.dEntropy?.some((row) => row.some((v) => v !== 0))) {
      throw new ConfigError(
        "the loss returned entropy gradients, which the Tinker API cannot apply",
        "set entropyCoeff to 0",
      );
    }
    this.pending.push(
      batch.map((s, r) => ({
        promptTokens: s.promptTokens,
        responseTokens: s.responseTokens,
        logp: logp[r],
        dLogp: grads.dLogp[r],
      })),
    );
  }

  /**
   * On a `sum` server the coefficients go out at once as `cross_entropy` weights, whose answer carries the
   * log-probs: no separate forward. Elsewhere (SkyRL divides cross_entropy by each datum's weight sum) null:
   * `forwardBackward`'s forward for the current log-probs, then `importance_sampling`, is the exact way.
   */
  async forwardBackwardWithCoefficients(
    batch: readonly TrainingSequence[],
    dLogp: readonly Float64Array[],
  ): Promise<SequenceLogprobs[] | null> {
    if (this.settings.lossConvention !== "sum") return null;
    const data = sumCrossEntropyData(batch.map((s, r) => ({ ...s, dLogp: dLogp[r] })));
    const out = await this.model.forwardBackward(data, "cross_entropy");
    return responseLogprobs(out, batch).map((logp) => ({ logp }));
  }

  async optimizerStep(opts: OptimizerStepOptions): Promise<OptimizerStepResult> {
    const micro = this.pending.map((rows) => rows.filter((r) => r.responseTokens.length > 0));
    this.pending = [];
    const datums = micro.reduce((a, rows) => a + rows.length, 0);
    for (const rows of micro) {
      if (rows.length === 0) continue;
      const data: WireDatum[] = exactGradientData(rows, this.settings.lossConvention, datums);
      await this.model.forwardBackward(data, "importance_sampling");
    }
    const metrics = await this.model.optimStep({
      learningRate: opts.lr,
      beta1: this.optimizer.beta1,
      beta2: this.optimizer.beta2,
      eps: this.optimizer.eps,
      weightDecay: this.optimizer.weightDecay,
      gradClipNorm: opts.gradClip,
    });
    this.version++;
    const normKey = Object.keys(metrics).find((k) => k.endsWith("grad_norm"));
    const gradNorm = normKey === undefined ? Number.NaN : metrics[normKey];
    // The server applies the step itself; a non-finite norm cannot be skipped after the fact.
    return { gradNorm, applied: true };
  }

  /** Saves the server state and records it, with the tokenizer and model config, in `dir`. */
  async save(dir: string): Promise<void> {
    const name = `klear-ckpt-${++this.saves}-${Date.now().toString(36)}`;
    const statePath = await this.model.saveState(name);
    const samplerPath = (await this.samplerSource()).modelPath;
    for (const f of [
      "config.json",
      "generation_config.json",
      "tokenizer.json",
      "tokenizer_config.json",
      "chat_template.jinja",
    ]) {
      if (existsSync(join(this.sourceDir, f))) await copyFile(join(this.sourceDir, f), join(dir, f));
    }
    const state: TinkerCheckpointState = {
      baseModel: this.model.baseModel,
      statePath,
      samplerPath,
      lora: this.settings.lora,
    };
    await writeFile(join(dir, TINKER_STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  }

  close(): void {
    this.client.close();
  }
}

class TinkerLogprobSource implements LogprobSource {
  constructor(private readonly model: TinkerModel) {}
  async logprobs(batch: readonly TrainingSequence[], opts: LogprobOptions): Promise<SequenceLogprobs[]> {
    checkTemperature(opts, "reference log-probs");
    return (await serverLogprobs(this.model, batch)).map((logp) => ({ logp }));
  }
}

/** A `TrainingBackend` on a Tinker server. One client (session) serves every model it opens. */
export function tinkerBackend(settings: TinkerBackendSettings): TrainingBackend & { client: TinkerClient } {
  const client = new TinkerClient(settings.client);
  let session: Promise<string> | null = null;
  const ready = () => {
    session ??= client.createSession(["klear"]);
    return session;
  };
  /** A fresh LoRA model, loaded from the folder's saved server state when it has one. */
  const open = async (checkpoint: string, optimizer: boolean) => {
    await ready();
    const saved = tinkerCheckpointState(checkpoint);
    const baseModel = saved?.baseModel ?? settings.baseModel ?? resolve(checkpoint);
    const model = await client.createModel(baseModel, saved?.lora ?? settings.lora);
    if (saved) await model.loadState(saved.statePath, optimizer);
    return { model, saved };
  };
  return {
    name: "tinker",
    client,
    close: () => client.close(),
    async openPolicy(checkpoint, opts) {
      const tokenizer = await loadTokenizer(checkpoint);
      const config = await readCheckpointConfig(checkpoint);
      const saved = tinkerCheckpointState(checkpoint);
      if (opts.resumeOptimizer && !saved) {
        throw new KlearError(
          "TINKER_NO_SERVER_STATE",
          `${checkpoint} has no ${TINKER_STATE_FILE}, so the server's optimizer state cannot be restored`,
          "resume only from checkpoints a Tinker run wrote, or start a fresh run",
        );
      }
      const { model } = await open(checkpoint, opts.resumeOptimizer !== undefined);
      return new TinkerPolicyTrainer(
        client,
        model,
        tokenizer,
        checkpoint,
        settings,
        opts.optimizer,
        loraParameterCount(config, settings.lora),
      );
    },
    async openReference(checkpoint) {
      const { model } = await open(checkpoint, false);
      return new TinkerLogprobSource(model);
    },
    async openSampler(checkpoint) {
      await ready();
      const tokenizer = await loadTokenizer(checkpoint);
      const saved = tinkerCheckpointState(checkpoint);
      const source = saved
        ? { modelPath: saved.samplerPath }
        : { baseModel: settings.baseModel ?? resolve(checkpoint) };
      return {
        sampler: new TinkerGenerator(client, async () => source, settings.samplingConcurrency),
        tokenizer,
      };
    },
  };
}
