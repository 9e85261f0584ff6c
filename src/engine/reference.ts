import type { Backend } from "./backend.js";

/**
 * Plain TypeScript kernels computed in float64, the oracle the native backend is tested against.
 * Every method accepts Float64Array as well (tests pass float64 data to keep the reference exact);
 * it is slow by design and exists only for tests.
 */
type Arr = Float32Array | Float64Array;

export class ReferenceBackend implements Backend {
  readonly name = "reference";

  gemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    alpha: number,
    a: Arr,
    lda: number,
    b: Arr,
    ldb: number,
    beta: number,
    c: Arr,
    ldc: number,
  ): void {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) {
          const av = transA ? a[p * lda + i] : a[i * lda + p];
          const bv = transB ? b[j * ldb + p] : b[p * ldb + j];
          s += av * bv;
        }
        c[i * ldc + j] = alpha * s + (beta === 0 ? 0 : beta * c[i * ldc + j]);
      }
    }
  }

  rmsnorm(x: Arr, weight: Arr, y: Arr, rstd: Arr, rows: number, dim: number, eps: number): void {
    for (let r = 0; r < rows; r++) {
      let ss = 0;
      for (let d = 0; d < dim; d++) ss += x[r * dim + d] ** 2;
      const s = 1 / Math.sqrt(ss / dim + eps);
      rstd[r] = s;
      for (let d = 0; d < dim; d++) y[r * dim + d] = x[r * dim + d] * s * weight[d];
    }
  }

  rmsnormBackward(
    dy: Arr,
    x: Arr,
    weight: Arr,
    rstd: Arr,
    dx: Arr,
    dWeight: Arr,
    rows: number,
    dim: number,
    accumulateDx: boolean,
  ): void {
    for (let r = 0; r < rows; r++) {
      const s = rstd[r];
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += dy[r * dim + d] * weight[d] * x[r * dim + d];
      const c = (dot * s * s * s) / dim;
      for (let d = 0; d < dim; d++) {
        const i = r * dim + d;
        const g = dy[i] * weight[d] * s - x[i] * c;
        dx[i] = accumulateDx ? dx[i] + g : g;
        dWeight[d] += dy[i] * x[i] * s;
      }
    }
  }

  rope(
    x: Arr,
    cos: Arr,
    sin: Arr,
    positions: Int32Array,
    rows: number,
    heads: number,
    headDim: number,
    inverse: boolean,
  ): void {
    const half = headDim / 2;
    const sign = inverse ? -1 : 1;
    for (let r = 0; r < rows; r++) {
      const p = positions[r];
      for (let h = 0; h < heads; h++) {
        const o = (r * heads + h) * headDim;
        for (let d = 0; d < half; d++) {
          const a = x[o + d];
          const b = x[o + d + half];
          const c = cos[p * half + d];
          const s = sign * sin[p * half + d];
          x[o + d] = a * c - b * s;
          x[o + d + half] = b * c + a * s;
        }
      }
    }
  }

  attention(
    q: Arr,
    k: Arr,
    v: Arr,
    out: Arr,
    lse: Arr,
    batch: number,
    seqLen: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    lengths: Int32Array | null,
    scale: number,
    segStart: Int32Array | null = null,
  ): void {
    const T = seqLen;
    const group = heads / kvHeads;
    const s = new Float64Array(T);
    for (let b = 0; b < batch; b++) {
      const len = lengths ? lengths[b] : T;
      for (let h = 0; h < heads; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < T; t++) {
          const o = ((b * T + t) * heads + h) * headDim;
          if (t >= len) {
            for (let d = 0; d < headDim; d++) out[o + d] = 0;
            lse[(b * heads + h) * T + t] = 0;
            continue;
          }
          const st = segStart ? segStart[b * T + t] : 0;
          let m = -Infinity;
          for (let j = st; j <= t; j++) {
            const ko = ((b * T + j) * kvHeads + kh) * headDim;
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += q[o + d] * k[ko + d];
            s[j] = dot * scale;
            m = Math.max(m, s[j]);
          }
          let sum = 0;
          for (let j = st; j <= t; j++) sum += Math.exp(s[j] - m);
          for (let d = 0; d < headDim; d++) out[o + d] = 0;
          for (let j = st; j <= t; j++) {
            const p = Math.exp(s[j] - m) / sum;
            const vo = ((b * T + j) * kvHeads + kh) * headDim;
            for (let d = 0; d < headDim; d++) out[o + d] += p * v[vo + d];
          }
          lse[(b * heads + h) * T + t] = m + Math.log(sum);
        }
      }
    }
  }

  attentionBackward(
    dOut: Arr,
    q: Arr,
    k: Arr,
    v: Arr,
    out: Arr,
    lse: Arr,
    dq: Arr,
    dk: Arr,
    dv: Arr,
    batch: number,
    seqLen: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    lengths: Int32Array | null,
    scale: number,
    segStart: Int32Array | null = null,
  ): void {
    const T = seqLen;
    const group = heads / kvHeads;
    dq.fill(0, 0, batch * T * heads * headDim);
    dk.fill(0, 0, batch * T * kvHeads * headDim);
    dv.fill(0, 0, batch * T * kvHeads * headDim);
    for (let b = 0; b < batch; b++) {
      const len = lengths ? lengths[b] : T;
      for (let h = 0; h < heads; h++) {
        const kh = Math.floor(h / group);
        for (let t = 0; t < Math.min(len, T); t++) {
          const o = ((b * T + t) * heads + h) * headDim;
          const l = lse[(b * heads + h) * T + t];
          let D = 0;
          for (let d = 0; d < headDim; d++) D += dOut[o + d] * out[o + d];
          for (let j = segStart ? segStart[b * T + t] : 0; j <= t; j++) {
            const ko = ((b * T + j) * kvHeads + kh) * headDim;
            let dot = 0;
            let dp = 0;
            for (let d = 0; d < headDim; d++) {
              dot += q[o + d] * k[ko + d];
              dp += dOut[o + d] * v[ko + d];
            }
            const p = Math.exp(dot * scale - l);
            const ds = p * (dp - D) * scale;
            for (let d = 0; d < headDim; d++) {
              dq[o + d] += ds * k[ko + d];
              dk[ko + d] += ds * q[o + d];
              dv[ko + d] += p * dOut[o + d];
            }
          }
        }
      }
    }
  }

  kvWrite(
    src: Arr,
    cache: Arr,
    rowSeq: Int32Array,
    rowPos: Int32Array,
    rows: number,
    kvHeads: number,
    headDim: number,
    maxLen: number,
  ): void {
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < kvHeads; h++) {
        const dst = ((rowSeq[r] * kvHeads + h) * maxLen + rowPos[r]) * headDim;
        for (let d = 0; d < headDim; d++) cache[dst + d] = src[(r * kvHeads + h) * headDim + d];
      }
    }
  }

  attentionDecode(
    q: Arr,
    kCache: Arr,
    vCache: Arr,
    out: Arr,
    rowSeq: Int32Array,
    rowPos: Int32Array,
    rows: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxLen: number,
    scale: number,
  ): void {
    const group = heads / kvHeads;
    for (let r = 0; r < rows; r++) {
      const n = rowPos[r] + 1;
      const s = new Float64Array(n);
      for (let h = 0; h < heads; h++) {
        const kh = Math.floor(h / group);
        const base = (rowSeq[r] * kvHeads + kh) * maxLen * headDim;
        const o = (r * heads + h) * headDim;
        let m = -Infinity;
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[o + d] * kCache[base + j * headDim + d];
          s[j] = dot * scale;
          m = Math.max(m, s[j]);
        }
        let sum = 0;
        for (let j = 0; j < n; j++) sum += Math.exp(s[j] - m);
        for (let d = 0; d < headDim; d++) out[o + d] = 0;
        for (let j = 0; j < n; j++) {
          const p = Math.exp(s[j] - m) / sum;
          for (let d = 0; d < headDim; d++) out[o + d] += p * vCache[base + j * headDim + d];
        }
      }
    }
  }

  swiglu(gate: Arr, up: Arr, out: Arr, n: number): void {
    for (let i = 0; i < n; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  }

  swigluBackward(dOut: Arr, gate: Arr, up: Arr, dGate: Arr, dUp: Arr, n: number): void {
    for (let i = 0; i < n; i++) {
      const sg = 1 / (1 + Math.exp(-gate[i]));
      dUp[i] = dOut[i] * gate[i] * sg;
      dGate[i] = dOut[i] * up[i] * sg * (1 + gate[i] * (1 - sg));
    }
  }

  add(dst: Arr, src: Arr, n: number): void {
    for (let i = 0; i < n; i++) dst[i] += src[i];
  }

  scale(x: Arr, alpha: number, n: number): void {
    for (let i = 0; i < n; i++) x[i] *= alpha;
  }

  embedding(table: Arr, ids: Int32Array, out: Arr, rows: number, dim: number): void {
    for (let r = 0; r < rows; r++) for (let d = 0; d < dim; d++) out[r * dim + d] = table[ids[r] * dim + d];
  }

  embeddingBackward(dOut: Arr, ids: Int32Array, dTable: Arr, rows: number, dim: number): void {
    for (let r = 0; r < rows; r++)
      for (let d = 0; d < dim; d++) dTable[ids[r] * dim + d] += dOut[r * dim + d];
  }

  logSoftmaxGather(
    logits: Arr,
    targets: Int32Array,
    rows: number,
    vocab: number,
    logp: Arr,
    lse: Arr,
    entropy: Arr | null,
  ): void {
    for (let r = 0; r < rows; r++) {
      if (targets[r] < 0) {
        logp[r] = 0;
        lse[r] = 0;
        if (entropy) entropy[r] = 0;
        continue;
      }
      let m = -Infinity;
      for (let j = 0; j < vocab; j++) m = Math.max(m, logits[r * vocab + j]);
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[r * vocab + j] - m);
      const l = m + Math.log(sum);
      lse[r] = l;
      logp[r] = logits[r * vocab + targets[r]] - l;
      if (entropy) {
        let h = 0;
        for (let j = 0; j < vocab; j++) {
          const lp = logits[r * vocab + j] - l;
          h -= Math.exp(lp) * lp;
        }
        entropy[r] = h;
      }
    }
  }

  logSoftmaxGatherBackward(
    logits: Arr,
    targets: Int32Array,
    lse: Arr,
    entropy: Arr | null,
    dLogp: Arr,
    dEntropy: Arr | null,
    dLogits: Arr,
    rows: number,
    vocab: number,
  ): void {
    for (let r = 0; r < rows; r++) {
      if (targets[r] < 0) {
        for (let j = 0; j < vocab; j++) dLogits[r * vocab + j] = 0;
        continue;
      }
      const g = dLogp[r];
      const ge = dEntropy && entropy ? dEntropy[r] : 0;
      const H = entropy ? entropy[r] : 0;
      for (let j = 0; j < vocab; j++) {
        const lp = logits[r * vocab + j] - lse[r];
        const p = Math.exp(lp);
        dLogits[r * vocab + j] = -g * p - ge * p * (lp + H);
      }
      dLogits[r * vocab + targets[r]] += g;
    }
  }

  adamw(
    param: Arr,
    grad: Arr,
    m: Arr,
    v: Arr,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void {
    const bc1 = 1 - beta1 ** step;
    const bc2 = 1 - beta2 ** step;
    for (let i = 0; i < n; i++) {
      m[i] = beta1 * m[i] + (1 - beta1) * grad[i];
      v[i] = beta2 * v[i] + (1 - beta2) * grad[i] * grad[i];
      const denom = Math.sqrt(v[i]) / Math.sqrt(bc2) + eps;
      param[i] = param[i] * (1 - lr * weightDecay) - (lr / bc1) * (m[i] / denom);
    }
  }

  sumSquares(x: Arr, n: number): number {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * x[i];
    return s;
  }
}
