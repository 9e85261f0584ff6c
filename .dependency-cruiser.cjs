/**
 * klear's layer rules, checked by `npm run lint:layers` (and by `npm test`, scripts/test.sh unit).
 *
 * Modules (the first folder under src/) import only downward, never sideways within their layer, and
 * no file-level import cycle exists anywhere (a lazy `await import()` and a type-only import count too):
 *
 *   util → engine → model → rollout / rewards / store / rows / backend / report
 *        → benchmarks → rl / sft / eval / data → tasks → cli
 *
 * `src/index.ts` (the package root) re-exports every module and is exempt. A task, a loss or a backend
 * is handed in to the layer that uses it, never imported upward. test/layers.test.ts runs this
 * file on a fixture tree to show every rule firing.
 */

/** Lowest first. Modules on one line are one layer: they must not import each other. */
const LAYERS = [
  ["util"],
  ["engine"],
  ["model"],
  ["rollout", "rewards", "store", "rows", "backend", "report"],
  // The benchmark catalogue (specs, loaders, the hub cache) that eval scores on and data decontaminates against.
  ["benchmarks"],
  ["rl", "sft", "eval", "data"],
  ["tasks"],
  ["cli"],
];

/**
 * Same-layer imports that are allowed, each with its reason: [from, to, why]. Keep this list short; a
 * new entry needs a reason a reviewer accepts (usually: move the shared piece one layer down instead).
 */
const SIBLING_EXCEPTIONS = [
  [
    "backend",
    "rollout",
    "a backend implements the rollout interface (rollout/types) and the local backend samples through the one local generator (rollout/generate); rollout never imports backend",
  ],
  [
    "backend",
    "store",
    "the local backend saves and loads checkpoints through the one run store; store never imports backend",
  ],
];

/**
 * Known violations not yet removed (issue 10), named edge by edge so that no new one can slip in:
 * [rule, from-file regex, to-file regex, why it is still here]. Delete an entry when its import is
 * gone; test/layers.test.ts fails on an entry whose import no longer exists.
 */
const TEMPORARY_EXCEPTIONS = [];

const modulePath = (names) => `^src/(${names.join("|")})/`;
const anyOf = (patterns) => patterns.map((p) => `(${p})`).join("|");

/**
 * Exempts exactly the listed edges: the rule keeps applying to every other file, and to every other
 * import of an exempted file.
 */
function applyTemporaryExceptions(rule) {
  const exceptions = TEMPORARY_EXCEPTIONS.filter(([name]) => name === rule.name);
  if (exceptions.length === 0) return [rule];
  const byFrom = new Map();
  for (const [, from, to] of exceptions) byFrom.set(from, [...(byFrom.get(from) ?? []), to]);
  const base = { ...rule, from: { ...rule.from, pathNot: anyOf([...byFrom.keys()]) } };
  const narrowed = [...byFrom].map(([from, tos]) => ({
    ...rule,
    from: { path: from },
    to: { ...rule.to, pathNot: anyOf(tos) },
  }));
  return [base, ...narrowed];
}

function forbidden() {
  const rules = [];
  LAYERS.forEach((layer, level) => {
    const above = LAYERS.slice(level + 1).flat();
    for (const name of layer) {
      if (above.length > 0) {
        rules.push({
          name: `layer-upward:${name}`,
          comment: `${name} may import only lower layers (${LAYERS.slice(0, level).flat().join(", ") || "none"}); hand the upper piece in instead`,
          severity: "error",
          from: { path: modulePath([name]) },
          to: { path: modulePath(above) },
        });
      }
      const allowed = SIBLING_EXCEPTIONS.filter(([from]) => from === name).map(([, to]) => to);
      const siblings = layer.filter((other) => other !== name && !allowed.includes(other));
      if (siblings.length > 0) {
        rules.push({
          name: `layer-sideways:${name}`,
          comment: `${name} must not import its own layer (${siblings.join(", ")}); move the shared piece one layer down`,
          severity: "error",
          from: { path: modulePath([name]) },
          to: { path: modulePath(siblings) },
        });
      }
    }
  });
  rules.push({
    name: "no-circular",
    comment: "no import cycle, also inside a module and through lazy import() or type-only imports",
    severity: "error",
    from: { path: "^src/" },
    to: { circular: true },
  });
  return rules.flatMap(applyTemporaryExceptions);
}

module.exports = {
  forbidden: forbidden(),
  options: {
    doNotFollow: { path: "node_modules" },
    includeOnly: "^src/",
    exclude: { path: "^src/index\\.ts$" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".json"],
    },
  },
};

// For test/layers.test.ts: not enumerable, because dependency-cruiser rejects unknown config keys.
Object.defineProperty(module.exports, "klear", {
  enumerable: false,
  value: { LAYERS, SIBLING_EXCEPTIONS, TEMPORARY_EXCEPTIONS },
});
