/**
 * The config machinery shared by the run commands (`klear demo`, `klear rl`): a zod schema whose every
 * field has a default and a description, named presets, and the layering preset → JSON file → `--a.b=c`
 * overrides, plus the command-line plumbing around it (flags, `--help`, `--resume` checks, Ctrl-C).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { z } from "zod";
import { ConfigError, checkChoice } from "./errors.js";
import { applyOverrides, splitOverrides } from "./overrides.js";

export type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? DeepPartial<T[K]> : T[K] };

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `over` layered onto `base`: sections merge key by key, anything else (arrays included) replaces. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] =
      isPlainObject(v) && isPlainObject(base[k]) ? deepMerge(base[k] as Record<string, unknown>, v) : v;
  }
  return out;
}

/**
 * Validates a complete or partial config against `schema`, naming the first bad field, where the value
 * came from (`source`) and the command whose `--help` lists every field (`command`, e.g. "demo").
 */
export function parseConfigWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  source: string,
  command: string,
): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const field = issue.path.join(".") || "(root)";
  throw new ConfigError(
    `${source}: ${command} config field "${field}": ${issue.message}`,
    `fix "${field}" (every field and its default: \`klear ${command} --help\`)`,
  );
}

export interface ConfigLayers {
  /** A preset name (default: the first preset). */
  preset?: string;
  /** A JSON file of fields to change, layered over the preset. */
  configFile?: string;
  /** `--a.b=c` overrides, layered last. */
  overrides?: Record<string, string>;
}

export interface ConfigSpec<T> {
  /** The command the config belongs to ("demo", "rl"): names it in errors and points at its `--help`. */
  command: string;
  /** Named starting points; the first is the default. */
  presets: Record<string, unknown>;
  /** Validates one layer (the schema plus any cross-field rules), naming its source on failure. */
  parse: (value: unknown, source: string) => T;
  /** A section name shown in the "write the config as { … }" hint. */
  exampleSection: string;
}

/**
 * preset → config file → `--a.b=c` overrides, each layer validated. An unknown key anywhere is an error
 * naming it (a typo never passes silently).
 */
export function resolveConfig<T>(spec: ConfigSpec<T>, layers: ConfigLayers): T {
  const names = Object.keys(spec.presets);
  const presetName = checkChoice(`${spec.command} preset`, layers.preset ?? names[0], names);
  let merged = spec.parse(spec.presets[presetName], `preset ${presetName}`) as Record<string, unknown>;
  if (layers.configFile) {
    let fileValue: unknown;
    try {
      fileValue = JSON.parse(readFileSync(layers.configFile, "utf8"));
    } catch (e) {
      throw new ConfigError(
        `cannot read ${spec.command} config ${layers.configFile}: ${(e as Error).message}`,
        `pass a readable JSON file whose fields are a subset of the ${spec.command} config (\`klear ${spec.command} --help\`)`,
        { cause: e },
      );
    }
    if (!isPlainObject(fileValue)) {
      throw new ConfigError(
        `${layers.configFile}: expected a JSON object`,
        `write the config as { "${spec.exampleSection}": { … } }`,
      );
    }
    merged = spec.parse(deepMerge(merged, fileValue), layers.configFile) as Record<string, unknown>;
  }
  return spec.parse(applyOverrides(merged, layers.overrides ?? {}), "--overrides");
}

/** The schema inside `.default()` / `.prefault()` wrappers. */
function unwrapDefaults(s: z.ZodType): z.ZodType {
  let cur = s as unknown as { def: { type: string; innerType?: unknown } };
  while ((cur.def.type === "default" || cur.def.type === "prefault") && cur.def.innerType) {
    cur = cur.def.innerType as typeof cur;
  }
  return cur as unknown as z.ZodType;
}

function objectShape(s: z.ZodType): Record<string, z.ZodType> | undefined {
  return (unwrapDefaults(s) as unknown as { shape?: Record<string, z.ZodType> }).shape;
}

/**
 * Every field of an object schema with its default and meaning, one `--a.b=default  what` row each, for
 * `--help`; a field that a short flag also sets (`aliases`) shows it, e.g. `--sampling.topP=0.95 (--top-p)`.
 */
export function describeConfig(
  schema: z.ZodType,
  opts: { flagWidth?: number; aliases?: readonly FlagAlias[] } = {},
): string {
  const width = opts.flagWidth ?? 40;
  const shortFlags = new Map<string, string[]>();
  for (const a of opts.aliases ?? []) {
    if (a.flag !== a.path) shortFlags.set(a.path, [...(shortFlags.get(a.path) ?? []), `--${a.flag}`]);
  }
  const lines: string[] = [];
  const walk = (
    shape: Record<string, z.ZodType>,
    defaults: Record<string, unknown>,
    prefix: string,
    indent: string,
  ) => {
    for (const [key, child] of Object.entries(shape)) {
      const flag = `${prefix}${key}`;
      const inner = objectShape(child);
      if (inner) {
        lines.push(`${indent}${flag}: ${child.description ?? ""}`);
        walk(inner, (defaults[key] ?? {}) as Record<string, unknown>, `${flag}.`, indent);
      } else {
        const short = shortFlags.get(flag);
        const shown = `${indent}--${flag}=${JSON.stringify(defaults[key])}${short ? ` (${short.join(", ")})` : ""}`;
        lines.push(`${shown.padEnd(width)} ${child.description ?? ""}`);
      }
    }
  };
  const shape = objectShape(schema);
  if (!shape) throw new TypeError("describeConfig needs an object schema");
  walk(shape, schema.parse({}) as Record<string, unknown>, "", "  ");
  return lines.join("\n");
}

// ---- the command line of a config-driven run command ----------------------------------------------------

/**
 * A short flag that sets one config field, e.g. `--top-p 0.9` for `--sampling.topP=0.9`: the flags users
 * already type keep working, while the config stays the one source of truth. Applied after the config
 * file and before `--a.b=c` overrides.
 */
export interface FlagAlias {
  /** The flag without its dashes, e.g. "top-p". */
  flag: string;
  /** The dotted config field it sets, e.g. "sampling.topP". */
  path: string;
  /**
   * How the flag's text becomes the value: string, number, int; boolean (`--x` sets true), false (`--no-x`
   * sets false); list (repeatable and comma-separated: an array of strings); ints (a comma list of integers).
   */
  kind: "string" | "number" | "int" | "boolean" | "false" | "list" | "ints";
  /** Turns the flag's text into the value instead of `kind`'s rule (e.g. `--mix a=0.7,b=0.3`). */
  parse?: (raw: string) => unknown;
}

export interface RunCommandOptions {
  help: () => string;
  extraStringFlags?: string[];
  extraBooleanFlags?: string[];
  topLevelFields?: string[];
  /** Extra flags that, like --preset, only shape a new run (refused with --resume). */
  configFlags?: string[];
  /** Short flags that set config fields (see {@link FlagAlias}). */
  aliases?: readonly FlagAlias[];
  /** Whether the command takes positional arguments (input files); default no. */
  positionals?: boolean;
  /** Whether the command offers `--resume` (default true); eval resumes by rerunning, so it does not. */
  resume?: boolean;
}

export interface RunCommandArgs {
  /** The flags parsed by `node:util` parseArgs (help, preset, config, out, resume, quiet and the extras). */
  values: Record<string, string | boolean | undefined>;
  /** `--a.b=c` overrides, the values of alias flags first (as JSON), so a dotted override wins. */
  overrides: Record<string, string>;
  /** Positional arguments, when the command takes them. */
  positionals: string[];
}

function aliasValue(command: string, a: FlagAlias, raw: string | boolean | string[]): unknown {
  if (a.kind === "boolean") return true;
  if (a.kind === "false") return false;
  if (a.kind === "list")
    return (raw as string[])
      .flatMap((v) => v.split(","))
      .map((v) => v.trim())
      .filter(Boolean);
  const text = raw as string;
  if (a.parse) return a.parse(text);
  if (a.kind === "string") return text;
  const parts = a.kind === "ints" ? text.split(",").map((v) => v.trim()) : [text];
  const nums = parts.map(Number);
  const int = a.kind !== "number";
  if (nums.some((x) => !Number.isFinite(x) || (int && !Number.isInteger(x)))) {
    throw new ConfigError(
      `klear ${command}: --${a.flag} "${text}" is not ${a.kind === "ints" ? "a comma list of integers" : int ? "an integer" : "a number"}`,
      `pass --${a.flag} with ${a.kind === "ints" ? "integers, e.g. 1,4,16" : "a number"}`,
    );
  }
  return a.kind === "ints" ? nums : nums[0];
}

function aliasOptions(aliases: readonly FlagAlias[]) {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = {};
  for (const a of aliases) {
    options[a.flag] =
      a.kind === "boolean" || a.kind === "false"
        ? { type: "boolean" }
        : a.kind === "list"
          ? { type: "string", multiple: true }
          : { type: "string" };
  }
  return options;
}

/** The kind of value a leaf schema holds, as a flag reads it. */
function flagKindOf(schema: z.ZodType): FlagAlias["kind"] {
  let cur = schema as unknown as { def: { type: string; innerType?: unknown } };
  while (["default", "prefault", "nullable", "optional"].includes(cur.def.type) && cur.def.innerType) {
    cur = cur.def.innerType as typeof cur;
  }
  const type = cur.def.type;
  return type === "number" ? "number" : type === "boolean" ? "boolean" : type === "array" ? "list" : "string";
}

/**
 * A short flag for every top-level leaf field of a config: its kebab-case name (`numPerm` → `--num-perm`)
 * reading the field's kind of value. `special` replaces the flags of the fields it names (e.g. `exact` by
 * `--no-exact`, or a custom `parse`).
 */
export function kebabFlagAliases(
  schema: z.ZodType,
  special: Record<string, Omit<FlagAlias, "path">[]> = {},
): FlagAlias[] {
  const shape = objectShape(schema);
  if (!shape) throw new TypeError("kebabFlagAliases needs an object schema");
  return Object.entries(shape).flatMap(([key, child]): FlagAlias[] =>
    special[key]
      ? special[key].map((a) => ({ ...a, path: key }))
      : [{ flag: key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`), path: key, kind: flagKindOf(child) }],
  );
}

/** Every flag a config-driven command accepts, dashes included (for checks that hints name real flags). */
export function acceptedFlags(schema: z.ZodType, opts: Omit<RunCommandOptions, "help">): Set<string> {
  const flags = new Set(["--config", "--preset", "--out", "-o", "--quiet", "-q", "--help", "-h"]);
  if (opts.resume !== false) flags.add("--resume");
  for (const f of [...(opts.extraStringFlags ?? []), ...(opts.extraBooleanFlags ?? [])]) flags.add(`--${f}`);
  for (const f of opts.topLevelFields ?? []) flags.add(`--${f}`);
  for (const a of opts.aliases ?? []) flags.add(`--${a.flag}`);
  const walk = (shape: Record<string, z.ZodType>, prefix: string) => {
    for (const [key, child] of Object.entries(shape)) {
      const inner = objectShape(child);
      if (inner) walk(inner, `${prefix}${key}.`);
      else if (prefix) flags.add(`--${prefix}${key}`);
    }
  };
  const shape = objectShape(schema);
  if (shape) walk(shape, "");
  return flags;
}

/**
 * Parses `klear <command>` arguments: `--preset`, `--config`, `--out`, `--resume`, `--quiet`, `--help`,
 * any `extraStringFlags` / `extraBooleanFlags`, the `aliases`, and `--a.b=c` overrides (plus the undotted
 * `topLevelFields`, e.g. `--steps=N`). Returns null after printing `help()` for `--help`. `--resume`
 * needs `--out` and refuses anything that would change the run's saved config (the layers and
 * `configFlags`), since it would be ignored.
 */
export function parseRunCommandArgs(
  command: string,
  argv: string[],
  opts: RunCommandOptions,
): RunCommandArgs | null {
  const split = splitOverrides(argv);
  const dotted = split.overrides;
  const rest: string[] = [];
  // A field whose short flag has its own name reads `--x=v` through the flag (its parse rule applies).
  const topLevel = new Set(
    (opts.topLevelFields ?? []).filter((f) => !opts.aliases?.some((a) => a.flag === f)),
  );
  for (const a of split.rest) {
    const m = /^--(\w+)=(.*)$/s.exec(a);
    if (m && topLevel.has(m[1])) dotted[m[1]] = m[2];
    else rest.push(a);
  }
  const aliases = opts.aliases ?? [];
  const options: Record<string, { type: "string" | "boolean"; short?: string; multiple?: boolean }> = {
    ...aliasOptions(aliases),
    preset: { type: "string" },
    config: { type: "string" },
    out: { type: "string", short: "o" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  };
  if (opts.resume !== false) options.resume = { type: "boolean" };
  for (const f of opts.extraStringFlags ?? []) options[f] = { type: "string" };
  for (const f of opts.extraBooleanFlags ?? []) options[f] = { type: "boolean" };
  let values: RunCommandArgs["values"];
  let positionals: string[];
  try {
    const parsed = parseArgs({
      args: rest,
      options,
      strict: true,
      allowPositionals: opts.positionals === true,
    });
    values = parsed.values as RunCommandArgs["values"];
    positionals = parsed.positionals;
  } catch (e) {
    throw new ConfigError(`klear ${command}: ${(e as Error).message}`, `see \`klear ${command} --help\``);
  }
  if (values.help) {
    console.log(opts.help());
    return null;
  }
  const overrides: Record<string, string> = {};
  const setBy = new Map<string, string>();
  for (const a of aliases) {
    const raw = (values as Record<string, string | boolean | string[] | undefined>)[a.flag];
    if (raw === undefined) continue;
    const value = JSON.stringify(aliasValue(command, a, raw));
    const earlier = setBy.get(a.path);
    if (earlier !== undefined && overrides[a.path] !== value) {
      throw new ConfigError(
        `klear ${command}: --${earlier} and --${a.flag} contradict each other`,
        "pass at most one of them",
      );
    }
    setBy.set(a.path, a.flag);
    overrides[a.path] = value;
  }
  Object.assign(overrides, dotted);
  if (values.resume) {
    if (!values.out) {
      throw new ConfigError(
        `klear ${command} --resume needs --out DIR`,
        `pass the run directory to resume: --out runs/${command}-…`,
      );
    }
    const shaping = [...(opts.configFlags ?? []), "preset", "config"];
    if (shaping.some((f) => values[f] !== undefined) || Object.keys(overrides).length > 0) {
      const named = [...shaping.map((f) => `--${f}`), "overrides"];
      throw new ConfigError(
        `klear ${command} --resume continues with the run's saved config; ${named.slice(0, -1).join(", ")} and ${named[named.length - 1]} would be ignored`,
        "drop them, or start a new run in another --out directory",
      );
    }
  }
  return { values, overrides, positionals };
}

/** The default run directory of a command: runs/<command>-<UTC timestamp>. */
export function defaultRunDir(command: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*$/, "").replace("T", "-");
  return join("runs", `${command}-${stamp}`);
}

/**
 * Runs `body` with a Ctrl-C handler: the first SIGINT asks the run to stop at its next step boundary
 * (with a checkpoint saved; `shouldStop` turns true), a second one exits at once. The run's loop must
 * yield to the event loop between steps for the handler to run.
 */
export async function withGracefulStop<T>(
  command: string,
  body: (shouldStop: () => boolean) => Promise<T>,
): Promise<T> {
  let stop = false;
  const onSigint = () => {
    if (stop) process.exit(130);
    stop = true;
    process.stderr.write(`\nklear ${command}: stopping after this step (Ctrl-C again to quit now)\n`);
  };
  process.on("SIGINT", onSigint);
  try {
    return await body(() => stop);
  } finally {
    process.off("SIGINT", onSigint);
  }
}

/**
 * The step boundary of a training loop: yields to the event loop (a step of synchronous compute awaits
 * at most microtasks, so without this a Ctrl-C handler, a macrotask, would never run until the end),
 * then says whether the run was asked to stop.
 */
export async function stopRequestedAtStepBoundary(shouldStop?: () => boolean): Promise<boolean> {
  await new Promise<void>((resolve) => setImmediate(resolve));
  return shouldStop?.() === true;
}
