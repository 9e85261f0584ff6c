import assert from "node:assert/strict";
import { test } from "node:test";
import { createTaskQueue, sleep } from "../src/util/concurrency.js";

test("createTaskQueue bounds work pushed over time, drains, and stops starting tasks after a failure", async () => {
  const q = createTaskQueue(2);
  let inFlight = 0;
  let peak = 0;
  const done: number[] = [];
  const task = (i: number, ms: number) => async () => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await sleep(ms);
    inFlight--;
    done.push(i);
  };
  q.push(task(0, 5));
  q.push(task(1, 1));
  await sleep(2);
  q.push(task(2, 1));
  q.push(task(3, 1));
  assert.ok(q.size > 0);
  await q.drain();
  assert.equal(peak, 2);
  assert.deepEqual([...done].sort(), [0, 1, 2, 3]);
  assert.equal(q.size, 0);
  await q.drain(); // an idle queue drains at once

  const failing = createTaskQueue(1);
  let ranAfter = false;
  failing.push(async () => {
    throw new Error("boom");
  });
  failing.push(async () => {
    ranAfter = true;
  });
  await assert.rejects(failing.drain(), /boom/);
  assert.equal(ranAfter, false);
});
