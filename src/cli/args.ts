// A small declarative flag parser: each command lists its flags once, and the same table drives
// parsing, validation (unknown flags, missing values, bad numbers) and the --help text.

import { UsageError } from '../core/errors.js';

export type FlagType = 'string' | 'int' | 'float' | 'bool';

export interface FlagSpec {
  name: string;            // without dashes, e.g. "max-tokens"
  type: FlagType;
  help: string;
  default?: string | number | boolean;
  min?: number;            // inclusive lower bound for numbers
  max?: number;            // inclusive upper bound for numbers
  choices?: readonly string[];
  required?: boolean;
  repeatable?: boolean;    // string flags that may be given several times (collected into an array)
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  flags: FlagSpec[];
  /** A flag that may also be given as the first bare argument (e.g. `openelm download MODEL`); every bare argument when it is repeatable. */
  positional?: string;
}

export type ParsedFlags = Record<string, string | number | boolean | string[] | undefined>;

export function parseFlags(cmd: CommandSpec, argv: string[]): ParsedFlags {
  const out: ParsedFlags = {};
  const specs = new Map(cmd.flags.map((f) => [f.name, f]));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      const pos = cmd.positional ? specs.get(cmd.positional) : undefined;
      if (pos?.repeatable) { const prev = out[pos.name]; out[pos.name] = [...(Array.isArray(prev) ? prev : []), String(convert(pos, a))]; continue; }
      if (pos && out[pos.name] === undefined) { out[pos.name] = convert(pos, a); continue; }
      throw new UsageError(`unexpected argument "${a}" (flags start with --; see openelm ${cmd.name} --help)`);
    }
    let name = a.slice(2), value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) { value = name.slice(eq + 1); name = name.slice(0, eq); }
    const spec = specs.get(name);
    if (!spec) throw new UsageError(`unknown flag --${name} (see openelm ${cmd.name} --help)`);
    if (spec.type === 'bool') {
      if (value === undefined) { out[name] = true; continue; }
      if (value !== 'true' && value !== 'false') throw new UsageError(`--${name} takes true or false, got "${value}"`);
      out[name] = value === 'true';
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      value = argv[++i];
    }
    const v = convert(spec, value);
    if (spec.repeatable) {
      const prev = out[name];
      out[name] = Array.isArray(prev) ? [...prev, String(v)] : [String(v)];
    } else out[name] = v;
  }
  for (const f of cmd.flags) {
    if (out[f.name] === undefined && f.default !== undefined) out[f.name] = f.default;
    if (f.required && out[f.name] === undefined) throw new UsageError(`--${f.name} is required`);
  }
  return out;
}

function convert(spec: FlagSpec, value: string): string | number {
  if (spec.type === 'string') {
    if (spec.choices && !spec.choices.includes(value)) {
      throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}; got "${value}"`);
    }
    return value;
  }
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${spec.name} needs a number, got "${value}"`);
  if (spec.type === 'int' && !Number.isInteger(n)) throw new UsageError(`--${spec.name} needs an integer, got "${value}"`);
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`--${spec.name} must be >= ${spec.min}, got ${value}`);
  if (spec.max !== undefined && n > spec.max) throw new UsageError(`--${spec.name} must be <= ${spec.max}, got ${value}`);
  return n;
}

export function helpText(cmd: CommandSpec): string {
  const lines = [`openelm ${cmd.name} — ${cmd.summary}`, '', `usage: ${cmd.usage}`, '', 'flags:'];
  const w = Math.max(...cmd.flags.map((f) => f.name.length + (f.type === 'bool' ? 0 : 4))) + 4;
  for (const f of cmd.flags) {
    const left = `  --${f.name}${f.type === 'bool' ? '' : ' ' + (f.type === 'string' ? 'S' : f.type === 'int' ? 'N' : 'X')}`;
    let right = f.help;
    if (f.choices) right += ` (${f.choices.join('|')})`;
    if (f.default !== undefined && f.default !== false) right += ` [default ${f.default}]`;
    if (f.required) right += ' (required)';
    lines.push(left.padEnd(w + 2) + right);
  }
  lines.push('  --help'.padEnd(w + 2) + 'show this help');
  return lines.join('\n');
}

/** Typed getters so commands read flags without casts. */
export const get = {
  str: (f: ParsedFlags, k: string): string | undefined => (f[k] === undefined ? undefined : String(f[k])),
  num: (f: ParsedFlags, k: string): number | undefined => (f[k] === undefined ? undefined : Number(f[k])),
  bool: (f: ParsedFlags, k: string): boolean => f[k] === true,
  list: (f: ParsedFlags, k: string): string[] => (Array.isArray(f[k]) ? (f[k] as string[]) : f[k] === undefined ? [] : [String(f[k])]),
};
