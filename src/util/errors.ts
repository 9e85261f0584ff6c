/**
 * Every error klear raises on purpose is a KlearError: it names the problem, the thing at fault
 * (a file, a field, a flag) and the fix, so a user never has to read a stack trace to recover.
 */
export class KlearError extends Error {
  /** Stable machine-readable code, e.g. "SAFETENSORS_CORRUPT" or "CONFIG_INVALID". */
  readonly code: string;
  /** What the user should do about it. */
  readonly fix: string;

  constructor(code: string, message: string, fix: string, options?: { cause?: unknown }) {
    super(`${message}\n  fix: ${fix}`, options);
    this.name = "KlearError";
    this.code = code;
    this.fix = fix;
  }
}

/** A config value, CLI flag or API argument that is out of range or unknown. */
export class ConfigError extends KlearError {
  constructor(message: string, fix: string, options?: { cause?: unknown }) {
    super("CONFIG_INVALID", message, fix, options);
    this.name = "ConfigError";
  }
}

/** Rejects a name that is not one of `choices`, listing the valid ones. */
export function checkChoice<T extends string>(what: string, value: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(value)) return value as T;
  throw new ConfigError(`unknown ${what} "${value}"`, `use one of: ${choices.join(", ")}`);
}
