import type { Qwen3Batch } from "../model/qwen3.js";
import type { Tokenizer } from "../model/tokenizer.js";
import { KlearError } from "../util/errors.js";
import { Rng } from "../util/rng.js";
import type { OpenAIClient } from "./openai.js";

/**
 * Checks that an inference server serves what the trainer holds: at start-up the model name and the
 * tokenizer, and before each rollout batch the weights themselves — the server's log-probs of a fixed
 * probe sequence must equal the policy's within a tolerance, so a reload that silently failed (or left
 * part of the model stale) is caught before klear trains on its samples.
 */

/** What the check needs of the policy: the trainer's own log-probs. */
export interface ProbeModel {
  readonly config: { readonly vocabSize: number };
  logprobs(batch: Qwen3Batch): { logp: Float32Array };
}

/** A fixed pseudo-random probe of `length` ids below `vocab` (the same on both sides, every step). */
export function probeTokens(vocab: number, length = 32, seed = 12_345): number[] {
  const rng = new Rng(seed);
  return Array.from({ length }, () => rng.int(vocab));
}

/** log p(probe[t] | probe[<t]) for t ≥ 1 under the trainer's policy. */
export function policyProbeLogprobs(model: ProbeModel, probe: readonly number[]): number[] {
  const seqLen = probe.length - 1;
  const batch: Qwen3Batch = {
    tokens: Int32Array.from(probe.slice(0, seqLen)),
    targets: Int32Array.from(probe.slice(1)),
    batchSize: 1,
    seqLen,
  };
  return Array.from(model.logprobs(batch).logp);
}

/** The same log-probs as endpoint `endpoint` computes them (vLLM `prompt_logprobs`). */
export async function servedProbeLogprobs(
  client: OpenAIClient,
  model: string,
  probe: readonly number[],
  endpoint = 0,
): Promise<number[]> {
  const res = await client.completeTokens(
    probe,
    { model, maxTokens: 1, temperature: 0, promptLogprobs: true },
    { endpoint },
  );
  const lp = res.promptLogprobs;
  if (!lp || lp.length !== probe.length || lp.slice(1).some((x) => x === null)) {
    throw new KlearError(
      "SERVER_NO_PROMPT_LOGPROBS",
      `${res.endpoint} returned no prompt log-probs for the version probe`,
      "use a server that supports prompt_logprobs (vLLM), or set rollout.versionCheck false",
    );
  }
  return lp.slice(1) as number[];
}

export interface VersionCheckResult {
  maxAbsDiff: number;
  meanAbsDiff: number;
  tolerance: number;
  ok: boolean;
}

export function compareLogprobs(
  served: readonly number[],
  expected: readonly number[],
  tolerance: number,
): VersionCheckResult {
  let max = 0;
  let sum = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(served[i] - expected[i]);
    max = Math.max(max, Number.isFinite(d) ? d : Number.POSITIVE_INFINITY);
    sum += d;
  }
  const meanAbsDiff = sum / Math.max(1, expected.length);
  return { maxAbsDiff: max, meanAbsDiff, tolerance, ok: max <= tolerance };
}

/**
 * Probes every endpoint (each serves its own copy of the weights) and throws STALE_WEIGHTS when one
 * differs from the trainer's log-probs by more than `tolerance` (max |Δ log p| over the probe).
 */
export async function checkServedVersion(
  opts: {
    client: OpenAIClient;
    model: string;
    tolerance: number;
    version: string;
  } & (
    | { policy: ProbeModel; probe?: readonly number[] }
    | {
        /** The policy's probe log-probs, taken when it was handed over. */ expected: readonly number[];
        probe: readonly number[];
      }
  ),
): Promise<VersionCheckResult> {
  const probe = opts.probe ?? probeTokens("policy" in opts ? opts.policy.config.vocabSize : 0);
  const expected = "policy" in opts ? policyProbeLogprobs(opts.policy, probe) : opts.expected;
  let worst: VersionCheckResult | null = null;
  for (const [i, base] of opts.client.endpointUrls.entries()) {
    const served = await servedProbeLogprobs(opts.client, opts.model, probe, i);
    const result = compareLogprobs(served, expected, opts.tolerance);
    if (!result.ok) {
      throw new KlearError(
        "STALE_WEIGHTS",
        `${base} does not serve policy version ${opts.version}: its log-probs on the probe differ from the trainer's by up to ${result.maxAbsDiff.toExponential(2)} (tolerance ${opts.tolerance})`,
        "the hand-off did not take, or the server restarted on older weights: check its log for the reload (klear hands the weights over again on --resume); raise rollout.server.versionTolerance only for lower-precision serving",
      );
    }
    if (!worst || result.maxAbsDiff > worst.maxAbsDiff) worst = result;
  }
  return worst ?? { maxAbsDiff: 0, meanAbsDiff: 0, tolerance: opts.tolerance, ok: true };
}

/**
 * Start-up checks: the server serves `model` (GET /v1/models), and tokenises a probe text with special
 * tokens as klear's tokenizer does (vLLM /tokenize), so the prompt ids mean the same on both sides.
 */
export async function checkServerSetup(opts: {
  client: OpenAIClient;
  model: string;
  tokenizer?: Tokenizer;
}): Promise<void> {
  for (let i = 0; i < opts.client.endpointUrls.length; i++) {
    const base = opts.client.endpointUrls[i];
    const models = (await opts.client.admin(i, "GET", "/v1/models")) as { data?: { id?: string }[] } | null;
    const ids = (models?.data ?? []).map((m) => m.id);
    if (!ids.includes(opts.model)) {
      throw new KlearError(
        "SERVER_WRONG_MODEL",
        `${base} serves ${ids.length ? ids.join(", ") : "no model"}, not "${opts.model}"`,
        `set rollout.model to the server's --served-model-name (${ids[0] ?? "?"})`,
      );
    }
    if (!opts.tokenizer) continue;
    const text = "<|im_start|>user\nklear: 12+30=42 ✓<|im_end|>\n";
    const mine = opts.tokenizer.encode(text);
    let theirs: number[] | undefined;
    try {
      const answer = (await opts.client.admin(i, "POST", "/tokenize", {
        model: opts.model,
        prompt: text,
        add_special_tokens: false,
      })) as { tokens?: number[] } | null;
      theirs = answer?.tokens;
    } catch (e) {
      // SGLang and servers started with --skip-tokenizer-init have no /tokenize: nothing to compare.
      if (e instanceof KlearError && e.code === "INFERENCE_REJECTED") continue;
      throw e;
    }
    if (theirs && (theirs.length !== mine.length || theirs.some((t, k) => t !== mine[k]))) {
      throw new KlearError(
        "TOKENIZER_MISMATCH",
        `${base} tokenises a probe text as [${theirs.join(", ")}], klear's tokenizer as [${mine.join(", ")}]`,
        "serve the checkpoint folder klear wrote (it carries the policy's tokenizer.json)",
      );
    }
  }
}
