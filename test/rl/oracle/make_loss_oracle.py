"""Dev-only oracle: policy losses written as the papers' ratio formulas, differentiated by torch autograd.

GPPO is written exactly as paper Eq. 11, clip(δ, (1−ε_l)·δ/sg(δ), (1+ε_h)·δ/sg(δ)), so autograd yields the
paper's gradient independently of klear's detached-weight implementation. Writes
test/rl/fixtures/loss-oracle.json, which test/rl/objectives/oracle.test.ts compares against.

Run: /usr/bin/python3 test/rl/oracle/make_loss_oracle.py   (needs torch; float64 throughout)
"""
import json
import os

import torch

torch.manual_seed(20250813)
DT = torch.float64
ROWS = [7, 3, 9, 5, 6, 1]


def make_batch():
    n = max(ROWS)
    old = -0.1 - 3.0 * torch.rand(len(ROWS), n, dtype=DT)
    # Log-ratios from −1 to 2.6: ratios 0.37..13.5 cover every region, including δ > c = 10.
    log_ratio = -1.0 + 3.6 * torch.rand(len(ROWS), n, dtype=DT)
    mask = torch.zeros(len(ROWS), n, dtype=DT)
    for i, length in enumerate(ROWS):
        mask[i, :length] = (torch.rand(length) > 0.15).to(DT)
    mask[1, :] = 0.0  # one fully masked response
    adv = torch.tensor([1.3, -0.7, -1.9, 0.4, -0.05, 2.2], dtype=DT)
    ref = old + 0.4 * (torch.rand(len(ROWS), n, dtype=DT) - 0.5)
    return old, old + log_ratio, mask, adv, ref


def aggregate(values, mask, mode, divisor=None):
    if mode == "token-mean":
        return (values * mask).sum() / mask.sum()
    row_tokens = mask.sum(-1)
    alive = row_tokens > 0
    seqs = alive.sum()
    if mode == "seq-mean-token-sum":
        return (values * mask).sum(-1)[alive].sum() / seqs
    if mode == "seq-mean-token-mean":
        return ((values * mask).sum(-1)[alive] / row_tokens[alive]).sum() / seqs
    if mode == "seq-mean-token-sum-norm":
        return (values * mask).sum() / divisor
    raise ValueError(mode)


def clipped_surrogate(ratio, adv, eps_low, eps_high, c=None, gppo=False, beta1=1.0, beta2=1.0, only_high=False):
    a = adv[:, None]
    if gppo or only_high:
        unit = ratio / ratio.detach()  # numerically 1, carries the gradient of log π
        lo = (1 - eps_low) * unit if not only_high else torch.full_like(ratio, 1 - eps_low)
        hi = (1 + eps_high) * unit
        clipped = torch.max(torch.min(ratio, hi), lo)
        surrogate = torch.min(ratio * a, clipped * a)
        # General form (App. A.2): the clipped regions' value and gradient scaled by β1 (low) / β2 (high).
        low_region = (a < 0) & (ratio < 1 - eps_low)
        high_region = (a > 0) & (ratio > 1 + eps_high)
        surrogate = torch.where(low_region, beta1 * surrogate, surrogate)
        surrogate = torch.where(high_region, beta2 * surrogate, surrogate)
    else:
        clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
        surrogate = torch.min(ratio * a, clipped * a)
    loss = -surrogate
    if c is not None:
        loss = torch.where(a < 0, torch.min(loss, -a * c), loss)
    return loss


def case(name, cfg, logp0, old, mask, adv, ref, loss_fn, agg="token-mean", divisor=None, compare_value=True):
    logp = logp0.clone().requires_grad_(True)
    total = aggregate(loss_fn(logp), mask, agg, divisor)
    total.backward()
    return {
        "name": name,
        "config": cfg,
        "loss": total.item() if compare_value else None,
        "dLogp": [[g for g in row[:length]] for row, length in zip(logp.grad.tolist(), ROWS)],
    }


def main():
    old, logp0, mask, adv, ref = make_batch()
    ratio_of = lambda lp: torch.exp(lp - old)  # noqa: E731
    cases = []
    for agg in ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]:
        div = 12.0 if agg == "seq-mean-token-sum-norm" else None
        cfg = {"epsLow": 0.2, "epsHigh": 0.28, "clipRatioC": 10, "aggregation": agg}
        if div:
            cfg["lengthDivisor"] = div
        cases.append(case("gppo", cfg, logp0, old, mask, adv, ref,
                          lambda lp: clipped_surrogate(ratio_of(lp), adv, 0.2, 0.28, 10, gppo=True), agg, div))
    cases.append(case("gppo", {"epsLow": 0.2, "epsHigh": 0.28, "clipRatioC": 10, "beta1": 0.25, "beta2": 0.5},
                      logp0, old, mask, adv, ref,
                      lambda lp: clipped_surrogate(ratio_of(lp), adv, 0.2, 0.28, 10, gppo=True, beta1=0.25, beta2=0.5)))
    cases.append(case("gppo-only-high", {"epsLow": 0.2, "epsHigh": 0.28, "clipRatioC": 10}, logp0, old, mask, adv, ref,
                      lambda lp: clipped_surrogate(ratio_of(lp), adv, 0.2, 0.28, 10, only_high=True)))
    cases.append(case("ppo-clip", {"epsLow": 0.2}, logp0, old, mask, adv, ref,
                      lambda lp: clipped_surrogate(ratio_of(lp), adv, 0.2, 0.2)))
    cases.append(case("dual-clip", {"epsLow": 0.2, "clipRatioC": 3}, logp0, old, mask, adv, ref,
                      lambda lp: clipped_surrogate(ratio_of(lp), adv, 0.2, 0.2, 3)))
    cases.append(case("clip-higher", {"epsLow": 0.2, "epsHigh": 0.28}, logp0, old, mask, adv, ref,
                      lambda lp: clipped_surrogate(ratio_of(lp), adv, 0.2, 0.28)))
    # CISPO's loss −sg(w)·A·log π has the right gradient but a different value from klear's reported −A·w.
    cases.append(case("cispo", {"epsLow": 0.2, "epsHigh": 0.28}, logp0, old, mask, adv, ref,
                      lambda lp: -torch.clamp(ratio_of(lp), 0.8, 1.28).detach() * adv[:, None] * lp,
                      compare_value=False))

    def gspo(lp):
        log_seq = ((lp - old) * mask).sum(-1) / mask.sum(-1).clamp(min=1)
        seq_ratio = torch.exp(log_seq)[:, None]
        a = adv[:, None]
        return -torch.min(seq_ratio * a, torch.clamp(seq_ratio, 1 - 0.2, 1 + 0.28) * a)

    cases.append(case("gspo", {"epsLow": 0.2, "epsHigh": 0.28, "aggregation": "seq-mean-token-mean"},
                      logp0, old, mask, adv, ref, gspo, "seq-mean-token-mean"))

    for est in ["k1", "k2", "k3"]:
        def with_kl(lp, est=est):
            x = lp - ref
            k = {"k1": x, "k2": 0.5 * x * x, "k3": torch.exp(-x) + x - 1}[est]
            return clipped_surrogate(ratio_of(lp), adv, 0.2, 0.2) + 0.05 * k
        cases.append(case("ppo-clip", {"epsLow": 0.2, "klEstimator": est, "klCoeff": 0.05}, logp0, old, mask, adv, ref,
                          with_kl))

    rows = lambda t: [row[:length] for row, length in zip(t.tolist(), ROWS)]  # noqa: E731
    out = {
        "generator": "test/rl/oracle/make_loss_oracle.py (torch %s autograd, float64)" % torch.__version__,
        "logp": rows(logp0),
        "oldLogp": rows(old),
        "refLogp": rows(ref),
        "mask": rows(mask),
        "advantages": adv.tolist(),
        "cases": cases,
    }
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "loss-oracle.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path), len(cases), "cases")


if __name__ == "__main__":
    main()
