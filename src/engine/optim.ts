import { ConfigError } from "../util/errors.js";
import type { Backend } from "./backend.js";
import { getNativeBackend } from "./native.js";

/** A trainable tensor: values, a gradient buffer of the same length, and its shape. */
export interface Parameter {
  data: Float32Array;
  grad: Float32Array;
  shape: number[];
}

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay (default: all, as verl's FSDP actor does). */
  decay?: (name: string, param: Parameter) => boolean;
}

export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

/** AdamW with decoupled weight decay, PyTorch's update rule, moments kept in float32. */
export class AdamW {
  readonly params: Map<string, Parameter>;
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly decay: (name: string, param: Parameter) => boolean;
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private readonly backend: Backend;
  stepCount = 0;

  constructor(params: Map<string, Parameter>, opts: AdamWOptions, backend: Backend = getNativeBackend()) {
    if (!(opts.lr >= 0))
      throw new ConfigError(`AdamW lr must be >= 0, got ${opts.lr}`, "pass a learning rate");
    this.params = params;
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    for (const [what, b] of [
      ["beta1", this.beta1],
      ["beta2", this.beta2],
    ] as const) {
      if (!(b >= 0 && b < 1))
        throw new ConfigError(`AdamW ${what} must be in [0, 1), got ${b}`, `fix ${what}`);
    }
    this.decay = opts.decay ?? (() => true);
    this.backend = backend;
    for (const [name, p] of params) {
      this.m.set(name, new Float32Array(p.data.length));
      this.v.set(name, new Float32Array(p.data.length));
    }
  }

  /** One update with learning rate `lr` (default: the constructor's), using each parameter's grad. */
  step(lr: number = this.lr): void {
    this.stepCount++;
    for (const [name, p] of this.params) {
      const m = this.m.get(name);
      const v = this.v.get(name);
      if (!m || !v)
        throw new ConfigError(`AdamW: parameter ${name} was added after construction`, "rebuild AdamW");
      const wd = this.decay(name, p) ? this.weightDecay : 0;
      this.backend.adamw(
        p.data,
        p.grad,
        m,
        v,
        p.data.length,
        lr,
        this.beta1,
        this.beta2,
        this.eps,
        wd,
        this.stepCount,
      );
    }
  }

  /** Moments and step count, for checkpoints (arrays are live views; copy them to keep a snapshot). */
  state(): AdamWState {
    return { step: this.stepCount, m: this.m, v: this.v };
  }

  loadState(state: AdamWState): void {
    for (const [name, p] of this.params) {
      const m = state.m.get(name);
      const v = state.v.get(name);
      if (!m || !v || m.length !== p.data.length || v.length !== p.data.length) {
        throw new ConfigError(
          `optimizer state has no matching moments for parameter ${name}`,
          "resume with the optimizer state saved for this model",
        );
      }
      this.m.get(name)?.set(m);
      this.v.get(name)?.set(v);
    }
    this.stepCount = state.step;
  }
}

/** One named moment tensor of a serialised AdamW state (`m.<param>` / `v.<param>`), flat. */
export interface AdamWStateTensor {
  data: Float32Array;
  shape: number[];
}

/**
 * AdamW's moments as named flat tensors (`m.<param>`, `v.<param>`) plus the step count, ready for a
 * tensor file (checkpoints write them to optimizer.safetensors with the step in its metadata).
 */
export function adamWStateTensors(state: AdamWState): Map<string, AdamWStateTensor> {
  const tensors = new Map<string, AdamWStateTensor>();
  for (const [name, m] of state.m) tensors.set(`m.${name}`, { data: m, shape: [m.length] });
  for (const [name, v] of state.v) tensors.set(`v.${name}`, { data: v, shape: [v.length] });
  return tensors;
}

/** The inverse of `adamWStateTensors`: named moment tensors and a step count back into an `AdamWState`. */
export function adamWStateFromTensors(
  tensors: ReadonlyMap<string, { data: Float32Array }>,
  step: number,
): AdamWState {
  const state: AdamWState = { step, m: new Map(), v: new Map() };
  for (const [key, t] of tensors) {
    const dot = key.indexOf(".");
    const kind = key.slice(0, dot);
    if (dot < 0 || (kind !== "m" && kind !== "v")) {
      throw new ConfigError(
        `optimizer state tensor "${key}" is neither m.<param> nor v.<param>`,
        "resume from an optimizer state AdamW wrote",
      );
    }
    (kind === "m" ? state.m : state.v).set(key.slice(dot + 1), t.data);
  }
  return state;
}

/** The global L2 norm of all gradients. */
export function gradNorm(params: Map<string, Parameter>, backend: Backend = getNativeBackend()): number {
  let total = 0;
  for (const p of params.values()) total += backend.sumSquares(p.grad, p.grad.length);
  return Math.sqrt(total);
}

/**
 * Scales all gradients so their global norm is at most maxNorm (torch.nn.utils.clip_grad_norm_,
 * including its 1e-6 guard). Returns the norm before clipping.
 */
export function clipGradNorm(
  params: Map<string, Parameter>,
  maxNorm: number,
  backend: Backend = getNativeBackend(),
): number {
  const norm = gradNorm(params, backend);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const p of params.values()) backend.scale(p.grad, coef, p.grad.length);
  return norm;
}

export function zeroGrads(params: Map<string, Parameter>): void {
  for (const p of params.values()) p.grad.fill(0);
}

/**
 * Learning-rate schedules as verl builds them. `step` counts optimizer steps from 0, and warmup is
 * LambdaLR's min(1, step / warmupSteps), so the first step runs at lr 0 when warmupSteps > 0.
 */
export type LrSchedule =
  | { kind: "constant"; warmupSteps?: number }
  | { kind: "cosine"; warmupSteps?: number; totalSteps: number; minLrRatio?: number }
  | { kind: "linear"; warmupSteps?: number; totalSteps: number; minLrRatio?: number };

export function lrAt(schedule: LrSchedule, peakLr: number, step: number): number {
  const warm = schedule.warmupSteps ?? 0;
  if (step < warm) return (peakLr * step) / Math.max(1, warm);
  if (schedule.kind === "constant") return peakLr;
  const minRatio = schedule.minLrRatio ?? 0;
  const progress = Math.min(1, (step - warm) / Math.max(1, schedule.totalSteps - warm));
  if (schedule.kind === "cosine") {
    const x = Math.cos(Math.PI * progress);
    return peakLr * Math.max(0, x * (1 - minRatio) * 0.5 + (1 + minRatio) * 0.5);
  }
  return peakLr * (minRatio + (1 - minRatio) * (1 - progress));
}

/**
 * Number of loss-bearing tokens (target >= 0 and inside the sequence length) in a batch; a token-mean
 * loss over a mini-batch divides by the sum of this over all its micro-batches, so splitting the
 * mini-batch does not change the gradient.
 */
export function countLossTokens(
  targets: Int32Array,
  batchSize: number,
  seqLen: number,
  lengths?: Int32Array,
): number {
  let n = 0;
  for (let b = 0; b < batchSize; b++) {
    const len = lengths ? lengths[b] : seqLen;
    for (let t = 0; t < len; t++) if (targets[b * seqLen + t] >= 0) n++;
  }
  return n;
}
