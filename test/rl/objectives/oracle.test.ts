/**
 * klear's losses against torch autograd of the papers' ratio formulas (fixture made by the dev-only
 * test/rl/oracle/make_loss_oracle.py). GPPO there is Eq. 11 literally, with δ/sg(δ) in the clip bounds,
 * so this checks the detached-weight implementation against the paper's own construction.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { type PolicyLossConfig, policyLoss } from "../../../src/rl/objectives/index.js";
import { close } from "../helpers.js";

interface OracleCase {
  name: string;
  config: PolicyLossConfig;
  loss: number | null;
  dLogp: number[][];
}
interface Oracle {
  logp: number[][];
  oldLogp: number[][];
  refLogp: number[][];
  mask: number[][];
  advantages: number[];
  cases: OracleCase[];
}

const oracle: Oracle = JSON.parse(
  readFileSync(new URL("../fixtures/loss-oracle.json", import.meta.url), "utf8"),
);

for (const c of oracle.cases) {
  test(`${c.name} ${JSON.stringify(c.config)} matches torch autograd`, () => {
    const out = policyLoss(
      c.name,
      c.config,
    )({
      logp: oracle.logp,
      oldLogp: oracle.oldLogp,
      refLogp: oracle.refLogp,
      mask: oracle.mask,
      advantages: oracle.advantages,
    });
    if (c.loss !== null) close(out.loss, c.loss, 1e-12, "loss");
    let nonzero = 0;
    c.dLogp.forEach((row, i) => {
      row.forEach((g, t) => {
        close(out.dLogpRows[i][t], g, 1e-12, `dLogp[${i}][${t}]`);
        if (g !== 0) nonzero++;
      });
    });
    assert.ok(nonzero > 5);
  });
}

test("the fixture exercises every clip region", () => {
  const out = policyLoss("gppo")(oracle);
  const m = out.metrics;
  assert.ok(m.clipFracHigh > 0 && m.clipFracLow > 0 && m.dualClipFrac > 0, JSON.stringify(m));
});
