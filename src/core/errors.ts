// User-facing errors. Anything thrown as an OpenELMError is printed by the CLI as one line
// ("openelm: <message>") with a non-zero exit; anything else is a bug and shows a stack.

export class OpenELMError extends Error {
  /** Short machine-readable category, e.g. "config", "safetensors", "tokenizer", "usage". */
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'OpenELMError';
    this.code = code;
  }
}

/** Thrown for bad command-line usage (unknown flag, bad value). The CLI exits with status 2. */
export class UsageError extends OpenELMError {
  constructor(message: string) {
    super('usage', message);
    this.name = 'UsageError';
  }
}

export function fail(code: string, message: string): never {
  throw new OpenELMError(code, message);
}
