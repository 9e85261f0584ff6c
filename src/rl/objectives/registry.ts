/**
 * The policy-loss registry: one entry per loss holds everything about it (the options it accepts, their
 * defaults, its per-token rule, whether its ratio is per sequence). Adding a loss is one entry here, or
 * one `registerPolicyLoss(...)` call from user code; nothing else in klear names losses.
 */
import { ConfigError } from "../../util/errors.js";
import { AGGREGATION_MODES, type AggregationMode } from "./aggregate.js";
import { type ClipRule, cispoToken, clippedToken, type TokenTerm } from "./clip.js";
import {
  COMMON_LOSS_KEYS,
  LOSS_SPECIFIC_KEYS,
  type LossSpecificKey,
  type PolicyLossConfig,
  type ResolvedPolicyLossConfig,
} from "./options.js";

/**
 * A loss's term for one token, given the importance ratio it uses and the token's advantage: write the
 * value ℓ_t, the detached weight w_t (the gradient on log π is −A·w_t) and the region into `out`.
 */
export type TokenRule = (ratio: number, adv: number, out: TokenTerm) => TokenTerm;

/** Default values of the loss-specific options and of the aggregation. */
export interface PolicyLossDefaults {
  epsLow: number;
  /** null = the same as epsLow (a symmetric clip). */
  epsHigh: number | null;
  clipRatioC: number | null;
  aggregation: AggregationMode;
}

/** What `registerPolicyLoss` takes. */
export interface PolicyLossDefinition {
  name: string;
  /** One line for `--help` and errors. */
  summary: string;
  /** The loss-specific options it accepts, beyond the common ones every loss takes (aggregation, KL, entropy, TIS, ERC). */
  options: readonly LossSpecificKey[];
  /** Defaults of its options; unset ones are ε_low 0.2, ε_high = ε_low, no dual-clip, token-mean. */
  defaults?: Partial<PolicyLossDefaults>;
  /** "token": the ratio is each token's δ; "sequence": one ratio per sequence, exp(mean log δ) (GSPO). Default "token". */
  ratio?: "token" | "sequence";
  /** Builds the per-token rule from the validated config (called once per `policyLoss(...)`). */
  tokenRule: (cfg: ResolvedPolicyLossConfig) => TokenRule;
  /** Extra checks on the validated config; throw ConfigError naming the field and the fix. */
  check?: (cfg: ResolvedPolicyLossConfig) => void;
}

/** A registered loss: its definition with every default filled in. */
export interface PolicyLossSpec extends Required<Omit<PolicyLossDefinition, "check" | "defaults">> {
  defaults: PolicyLossDefaults;
  /** Every option key the loss accepts: its own options, then the common ones. */
  allowedKeys: readonly (keyof PolicyLossConfig)[];
  sequenceLevel: boolean;
  check: ((cfg: ResolvedPolicyLossConfig) => void) | undefined;
}

const CLIP_KEYS = ["epsLow", "epsHigh", "clipRatioC"] as const;
// Module-local aliases: the token rules run once per token, and a local binding is the cheapest call.
const clipTokenTerm = clippedToken;
const cispoTokenTerm = cispoToken;

function clipRule(
  cfg: ResolvedPolicyLossConfig,
  weights: Pick<ClipRule, "lowGrad" | "highGrad" | "lowValue" | "highValue">,
): TokenRule {
  const rule: ClipRule = { epsLow: cfg.epsLow, epsHigh: cfg.epsHigh, clipRatioC: cfg.clipRatioC, ...weights };
  return (ratio, adv, out) => clipTokenTerm(ratio, adv, rule, out);
}

/** PPO's hard clip: clipped tokens keep PPO's value and get no gradient. */
const hardClip = (cfg: ResolvedPolicyLossConfig) =>
  clipRule(cfg, { lowGrad: 0, highGrad: 0, lowValue: 1, highValue: 1 });

const BUILTIN_POLICY_LOSSES = {
  gppo: {
    summary: "Klear's gradient-preserving PPO (β1, β2 general form; β1 = β2 = 1 is the paper's)",
    options: [...CLIP_KEYS, "beta1", "beta2"],
    defaults: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
    tokenRule: (cfg) =>
      clipRule(cfg, { lowGrad: cfg.beta1, highGrad: cfg.beta2, lowValue: cfg.beta1, highValue: cfg.beta2 }),
  },
  "gppo-only-high": {
    summary: "GPPO's bounded gradient on the high side only, PPO's hard clip below",
    options: CLIP_KEYS,
    defaults: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: 10 },
    tokenRule: (cfg) => clipRule(cfg, { lowGrad: 0, highGrad: 1, lowValue: 1, highValue: 1 }),
  },
  "ppo-clip": {
    summary: "PPO's clipped surrogate, symmetric ε",
    options: CLIP_KEYS,
    defaults: { epsLow: 0.2, epsHigh: null, clipRatioC: null },
    tokenRule: hardClip,
  },
  "dual-clip": {
    summary: "PPO clip plus a cap c on negative-advantage tokens (verl's clip_ratio_c)",
    options: CLIP_KEYS,
    defaults: { epsLow: 0.2, epsHigh: null, clipRatioC: 3 },
    tokenRule: hardClip,
    check: (cfg) => {
      if (cfg.clipRatioC === null) {
        throw new ConfigError(
          "dual-clip: clipRatioC is null",
          "give dual-clip a constant c > 1, or use ppo-clip",
        );
      }
    },
  },
  "clip-higher": {
    summary: "DAPO's asymmetric clip range (ε_low 0.2, ε_high 0.28)",
    options: CLIP_KEYS,
    defaults: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: null },
    tokenRule: hardClip,
  },
  cispo: {
    summary: "MiniMax-M1's clipped, detached IS-weight REINFORCE",
    options: ["epsLow", "epsHigh"],
    defaults: { epsLow: 0.2, epsHigh: 0.28, clipRatioC: null },
    tokenRule: (cfg) => (ratio, adv, out) => cispoTokenTerm(ratio, adv, cfg.epsLow, cfg.epsHigh, out),
  },
  gspo: {
    summary: "Group Sequence Policy Optimization: one clipped ratio per sequence",
    options: ["epsLow", "epsHigh"],
    defaults: { epsLow: 3e-4, epsHigh: 4e-4, clipRatioC: null, aggregation: "seq-mean-token-mean" },
    ratio: "sequence",
    tokenRule: hardClip,
  },
} as const satisfies Record<string, Omit<PolicyLossDefinition, "name">>;

export type PolicyLossName = keyof typeof BUILTIN_POLICY_LOSSES;
/** The built-in losses (registered ones come after them in `policyLossNames()`). */
export const POLICY_LOSS_NAMES = Object.keys(BUILTIN_POLICY_LOSSES) as [PolicyLossName, ...PolicyLossName[]];

const registry = new Map<string, PolicyLossSpec>();

function finiteOrNull(value: unknown): boolean {
  return value === null || (typeof value === "number" && Number.isFinite(value));
}

function toSpec(def: PolicyLossDefinition): PolicyLossSpec {
  const where = `policy loss "${def.name}"`;
  if (typeof def.tokenRule !== "function") {
    throw new ConfigError(
      `${where}: tokenRule is not a function`,
      "give tokenRule: (cfg) => (ratio, adv, out) => out",
    );
  }
  for (const key of def.options) {
    if (!(LOSS_SPECIFIC_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(
        `${where}: unknown option "${key}"`,
        `a loss's own options are among: ${LOSS_SPECIFIC_KEYS.join(", ")} (every loss also takes ${COMMON_LOSS_KEYS.join(", ")})`,
      );
    }
  }
  const defaults: PolicyLossDefaults = {
    epsLow: def.defaults?.epsLow ?? 0.2,
    epsHigh: def.defaults?.epsHigh ?? null,
    clipRatioC: def.defaults?.clipRatioC ?? null,
    aggregation: def.defaults?.aggregation ?? "token-mean",
  };
  if (
    !finiteOrNull(defaults.epsLow) ||
    !finiteOrNull(defaults.epsHigh) ||
    !finiteOrNull(defaults.clipRatioC)
  ) {
    throw new ConfigError(
      `${where}: a default is not a finite number`,
      "give finite epsLow/epsHigh/clipRatioC defaults",
    );
  }
  if (!(AGGREGATION_MODES as readonly string[]).includes(defaults.aggregation)) {
    throw new ConfigError(
      `${where}: unknown default aggregation "${defaults.aggregation}"`,
      `use one of: ${AGGREGATION_MODES.join(", ")}`,
    );
  }
  const ratio = def.ratio ?? "token";
  if (ratio !== "token" && ratio !== "sequence") {
    throw new ConfigError(`${where}: ratio = "${String(ratio)}"`, 'use "token" or "sequence"');
  }
  return {
    name: def.name,
    summary: def.summary,
    options: [...def.options],
    defaults,
    ratio,
    sequenceLevel: ratio === "sequence",
    tokenRule: def.tokenRule,
    check: def.check,
    allowedKeys: [...def.options, ...COMMON_LOSS_KEYS],
  };
}

/**
 * Adds a policy loss, usable by name everywhere a built-in one is (`policyLoss`, the RL trainer's
 * `loss.name`). Throws ConfigError when the name is taken or the definition is malformed.
 */
export function registerPolicyLoss(def: PolicyLossDefinition): PolicyLossSpec {
  if (typeof def.name !== "string" || !/^[a-z0-9][a-z0-9+._-]*$/.test(def.name)) {
    throw new ConfigError(
      `policy loss name ${JSON.stringify(def.name)} is not a lower-case identifier`,
      'use letters, digits and "-", e.g. "my-loss"',
    );
  }
  if (registry.has(def.name)) {
    throw new ConfigError(`policy loss "${def.name}" is already registered`, "choose another name");
  }
  const spec = toSpec(def);
  registry.set(def.name, spec);
  return spec;
}

for (const [name, def] of Object.entries(BUILTIN_POLICY_LOSSES)) {
  registerPolicyLoss({ name, ...(def as Omit<PolicyLossDefinition, "name">) });
}

/** Every registered loss name: the built-ins, then the user's in registration order. */
export function policyLossNames(): string[] {
  return [...registry.keys()];
}

export function isPolicyLossName(name: string): boolean {
  return registry.has(name);
}

/** The registry entry of a loss; throws ConfigError listing every registered name when unknown. */
export function policyLossSpec(name: string): PolicyLossSpec {
  const spec = registry.get(name);
  if (spec === undefined) {
    throw new ConfigError(
      `unknown policy loss "${name}"`,
      `use one of: ${policyLossNames().join(", ")} (or add one with registerPolicyLoss)`,
    );
  }
  return spec;
}
