import { ConfigError } from "./errors.js";

/**
 * Applies `--a.b=c` style overrides to a plain config object (a copy is returned). Values are parsed
 * as JSON when they parse (numbers, booleans, arrays), else kept as strings. An override whose path
 * does not exist in `base` is rejected, naming the valid keys at that level, so a typo never passes
 * silently.
 */
export function applyOverrides<T extends Record<string, unknown>>(
  base: T,
  overrides: Record<string, string>,
): T {
  const out = structuredClone(base) as Record<string, unknown>;
  for (const [path, raw] of Object.entries(overrides)) {
    const keys = path.split(".");
    let node: Record<string, unknown> = out;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      if (!(k in node)) {
        throw new ConfigError(
          `unknown config key "${keys.slice(0, i + 1).join(".")}"`,
          `valid keys here: ${Object.keys(node).join(", ")}`,
        );
      }
      if (i === keys.length - 1) node[k] = parseValue(raw);
      else {
        const child = node[k];
        if (typeof child !== "object" || child === null || Array.isArray(child)) {
          throw new ConfigError(
            `config key "${keys.slice(0, i + 1).join(".")}" is not a section`,
            `set it directly: --${keys.slice(0, i + 1).join(".")}=VALUE`,
          );
        }
        node = child as Record<string, unknown>;
      }
    }
  }
  return out as T;
}

function parseValue(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}

/**
 * Splits argv into dotted overrides (`--a.b=c`, any flag containing a dot) and the rest, so each
 * command can hand the rest to `node:util` parseArgs.
 */
export function splitOverrides(argv: string[]): { overrides: Record<string, string>; rest: string[] } {
  const overrides: Record<string, string> = {};
  const rest: string[] = [];
  for (const a of argv) {
    const m = /^--([A-Za-z_][\w-]*(?:\.[\w-]+)+)=(.*)$/s.exec(a);
    if (m) overrides[m[1]] = m[2];
    else rest.push(a);
  }
  return { overrides, rest };
}
