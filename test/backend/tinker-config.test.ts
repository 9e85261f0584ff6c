// The `backend` config section: every field defaults, kind picks the backend, typos are rejected.
import assert from "node:assert/strict";
import { test } from "node:test";
import { localBackend } from "../../src/backend/local.js";
import {
  BackendSectionSchema,
  tinkerSettingsFromConfig,
  trainingBackendFromConfig,
} from "../../src/backend/tinker/config.js";

test("backend section: local by default, tinker settings with documented defaults", () => {
  const section = BackendSectionSchema.parse(undefined);
  assert.equal(section.kind, "local");
  assert.equal(trainingBackendFromConfig(section), localBackend);
  const tinker = BackendSectionSchema.parse({
    kind: "tinker",
    tinker: { baseUrl: "http://127.0.0.1:9", loraRank: 4, lossConvention: "sum" },
  });
  const settings = tinkerSettingsFromConfig(tinker.tinker);
  assert.deepEqual(settings.lora, { rank: 4, trainAttn: true, trainMlp: true, trainUnembed: true });
  assert.equal(settings.lossConvention, "sum");
  assert.equal(settings.client.baseUrl, "http://127.0.0.1:9");
  const backend = trainingBackendFromConfig(tinker);
  assert.equal(backend.name, "tinker");
  (backend as unknown as { client: { close(): void } }).client.close();
  assert.throws(() => BackendSectionSchema.parse({ kind: "tinker", tinker: { loraRnak: 4 } }));
  assert.throws(() => BackendSectionSchema.parse({ tinker: { lossConvention: "mean" } }));
});
