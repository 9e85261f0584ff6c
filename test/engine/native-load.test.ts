// Without the built addon, using the engine fails with a KlearError that names the setup command.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { test } from "node:test";

test("a missing native addon is a KlearError naming `npm run setup`", () => {
  const script = `
    import { getNativeBackend, nativeAvailable } from ${JSON.stringify(join(import.meta.dirname, "../../src/engine/native.ts"))};
    if (nativeAvailable()) throw new Error("addon unexpectedly available");
    try { getNativeBackend(); } catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }
  `;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    encoding: "utf8",
    env: { ...process.env, KLEAR_NATIVE_ADDON: "/nonexistent/klear_native.node" },
  });
  assert.equal(r.status, 0, r.stderr);
  const err = JSON.parse(r.stdout.trim());
  assert.equal(err.name, "KlearError");
  assert.equal(err.code, "NATIVE_NOT_BUILT");
  assert.match(err.message, /npm run setup/);
});
