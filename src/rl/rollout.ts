/**
 * Rollout collection, one RL step's data (spec §7.1 steps 1–5): sample prompts from the task's stream,
 * generate n responses each, score them, apply the overlong rules, filter groups, and let dynamic
 * sampling decide whether to generate again or train on what survived.
 */
import type { Tokenizer } from "../model/tokenizer.js";
import { completionSeed } from "../rollout/generate.js";
import type { Generator } from "../rollout/types.js";
import { mapConcurrent } from "../util/concurrency.js";
import { DynamicSampler, filterGroups, softOverlongPenalty } from "./filters.js";
import { type RlPrompt, type RlScorer, type RlTask, ROLLOUT_STREAM, SCORE_STREAM } from "./task.js";
import type { RlConfig } from "./trainer-config.js";

/** Responses scored at once: the code sandbox runs this many programs in parallel. */
export const SCORE_CONCURRENCY = 4;

/** One sampled response with everything the update needs. */
export interface Trajectory {
  prompt: RlPrompt;
  /** The prompt ids the response was sampled after (the prompt's, left-truncated to the length limit). */
  promptTokens: number[];
  /** The group: the prompt's position in the stream. */
  uid: string;
  sampleIndex: number;
  completion: number[];
  /**
   * The sampler's log-probs of the response tokens under the distribution the trainer scores, softmax(logits / T):
   * the raw model's at T = 1 (no truncation), else the sampler's own (after top-k/top-p when those are on).
   */
  samplerLogp: number[];
  text: string;
  finishReason: string;
  /** The scorer's reward, plus the soft overlong penalty when that is on. */
  reward: number;
  correct: boolean;
  /** Set by the policy update. */
  advantage: number;
}

export interface GroupFilterCounts {
  keptGroups: number;
  droppedAllCorrect: number;
  droppedAllWrong: number;
  droppedZeroVariance: number;
}

/** What one step's rollout collection measured, logged per step. */
export interface RolloutMetrics extends GroupFilterCounts {
  rewardMean: number;
  accuracy: number;
  responseLengthMean: number;
  responseLengthMax: number;
  truncatedFrac: number;
  genBatches: number;
  promptsGenerated: number;
  /** Prompts cut to `rollout.maxPromptTokens` (their oldest tokens dropped). */
  promptsTruncated: number;
  overlongDropped: number;
  /** Responses in the training batch. */
  trajectories: number;
  trainRewardMean: number;
}

export interface CollectRolloutsInput {
  config: RlConfig;
  task: RlTask;
  score: RlScorer;
  sampler: Generator;
  tokenizer: Tokenizer;
  /** Position in the task's prompt stream where this step starts. */
  cursor: number;
}

export interface CollectedRollouts {
  /** Every response generated this step, in order. */
  generated: Trajectory[];
  /** The responses to train on (empty when no group survived). */
  batch: Trajectory[];
  /** The stream position after this step's prompts. */
  cursor: number;
  metrics: RolloutMetrics;
}

/** Keeps the last `max` tokens (verl's left truncation keeps the end of the prompt, where the question is). */
export function truncatePromptLeft(tokens: readonly number[], max: number): number[] {
  return max > 0 && tokens.length > max ? tokens.slice(tokens.length - max) : [...tokens];
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Generates, scores and filters until dynamic sampling has a training batch (or gives up). */
export async function collectRollouts(input: CollectRolloutsInput): Promise<CollectedRollouts> {
  const { config, task, score, sampler, tokenizer } = input;
  const { rollout } = config;
  const dynamic = new DynamicSampler<Trajectory>({
    trainBatchPrompts: rollout.trainBatchPrompts,
    responsesPerPrompt: rollout.n,
    genBatchPrompts: rollout.genBatchPrompts,
    maxGenBatches: rollout.maxGenBatches,
    onShortfall: "truncate",
  });
  const generated: Trajectory[] = [];
  const counts: GroupFilterCounts = {
    keptGroups: 0,
    droppedAllCorrect: 0,
    droppedAllWrong: 0,
    droppedZeroVariance: 0,
  };
  let overlongDropped = 0;
  let promptsTruncated = 0;
  let batch: Trajectory[] = [];
  let genBatches = 0;
  let cursor = input.cursor;
  for (;;) {
    const start = cursor;
    const prompts = task.prompts(start, rollout.genBatchPrompts);
    cursor += prompts.length;
    genBatches++;
    const promptTokens = prompts.map((p) => truncatePromptLeft(p.tokens, rollout.maxPromptTokens));
    promptsTruncated += prompts.filter((p, i) => promptTokens[i].length < p.tokens.length).length;
    const completions = await sampler.generate(promptTokens, {
      n: rollout.n,
      temperature: rollout.temperature,
      topP: rollout.topP,
      topK: Math.max(0, rollout.topK),
      maxNewTokens: rollout.maxNewTokens,
      stopTokenIds: [tokenizer.eosTokenId],
      decode: (ids) => tokenizer.decode(ids),
      seed: completionSeed(config.seed ^ ROLLOUT_STREAM, start, 0),
    });
    const scores = await mapConcurrent(completions, SCORE_CONCURRENCY, async (c) =>
      score(prompts[c.promptIndex], c.text ?? "", {
        seed: completionSeed(config.seed ^ SCORE_STREAM, start + c.promptIndex, c.sampleIndex),
      }),
    );
    const trajs = completions.map((c, i): Trajectory => {
      let reward = scores[i].reward;
      if (config.overlong.softPunishment) {
        reward += softOverlongPenalty(c.tokens.length, {
          maxResponseTokens: rollout.maxNewTokens,
          bufferTokens: config.overlong.bufferTokens,
          penaltyFactor: config.overlong.penaltyFactor,
        });
      }
      return {
        prompt: prompts[c.promptIndex],
        promptTokens: promptTokens[c.promptIndex],
        uid: String(start + c.promptIndex),
        sampleIndex: c.sampleIndex,
        completion: c.tokens,
        samplerLogp: rollout.temperature === 1 || rollout.temperature === 0 ? c.modelLogprobs : c.logprobs,
        text: c.text ?? "",
        finishReason: c.finishReason,
        reward,
        correct: scores[i].correct,
        advantage: 0,
      };
    });
    generated.push(...trajs);
    // The overlong filter drops truncated responses before group filtering (spec §7.1 step 4).
    const candidates = config.overlong.filter ? trajs.filter((t) => t.finishReason !== "length") : trajs;
    overlongDropped += trajs.length - candidates.length;
    dynamic.add(filterCandidates(config, candidates, counts));
    const decision = dynamic.next();
    if (decision.action === "generate") continue;
    if (decision.action === "train") batch = decision.batch;
    break;
  }
  const lengths = generated.map((t) => t.completion.length);
  return {
    generated,
    batch,
    cursor,
    metrics: {
      rewardMean: mean(generated.map((t) => t.reward)),
      accuracy: mean(generated.map((t) => (t.correct ? 1 : 0))),
      responseLengthMean: mean(lengths),
      responseLengthMax: Math.max(...lengths),
      truncatedFrac: mean(generated.map((t) => (t.finishReason === "length" ? 1 : 0))),
      genBatches,
      promptsGenerated: genBatches * rollout.genBatchPrompts,
      promptsTruncated,
      ...counts,
      overlongDropped,
      trajectories: batch.length,
      trainRewardMean: batch.length > 0 ? mean(batch.map((t) => t.reward)) : Number.NaN,
    },
  };
}

/** The group filter over one generation batch, adding what it kept and dropped to `counts`. */
function filterCandidates(
  config: RlConfig,
  candidates: Trajectory[],
  counts: GroupFilterCounts,
): Trajectory[] {
  if (!config.groupFilter.enabled) {
    counts.keptGroups += new Set(candidates.map((t) => t.uid)).size;
    return candidates;
  }
  // "acc" is the verifier's verdict, before any overlong penalty shifts the reward (as DAPO's acc).
  const byAcc = config.groupFilter.metric === "acc";
  const f = filterGroups(
    {
      groupIds: candidates.map((t) => t.uid),
      rewards: candidates.map((t) => (byAcc ? (t.correct ? 1 : 0) : t.reward)),
    },
    { metric: config.groupFilter.metric, correctScore: 1 },
  );
  counts.keptGroups += f.keptGroups;
  counts.droppedAllCorrect += f.droppedAllCorrect;
  counts.droppedAllWrong += f.droppedAllWrong;
  counts.droppedZeroVariance += f.droppedZeroVariance;
  return f.keptIndices.map((i) => candidates[i]);
}
