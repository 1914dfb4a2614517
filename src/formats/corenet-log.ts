// CoreNet training logs (the stdout of corenet-train, as in Apple's published OpenELM
// training_logs.txt; the format is described in docs/training-logs.md). Read for
// `openelm report --against`.
//
// Two properties of the format matter when comparing with our metrics.jsonl:
// - the logged training loss is CoreNet's running mean since the start of the epoch, not the mean
//   since the previous line, so late in a run it moves slowly;
// - the iteration count is optimizer steps, with no token count: the report converts steps to tokens
//   with a tokens-per-step figure the user can set.

import { OpenELMError } from '../core/errors.js';

export interface CorenetTrainPoint {
  epoch: number;
  /** Optimizer steps completed. */
  step: number;
  maxSteps: number;
  /** total_loss (the loss itself when CoreNet logs a single number). */
  loss: number;
  /** Every loss component logged (total_loss, ce_loss, z_loss). */
  losses: Record<string, number>;
  /** The first parameter group's learning rate. */
  lr?: number;
  gradNorm?: number;
  /** Seconds since the start of the epoch. */
  elapsed?: number;
}

export interface CorenetLog {
  train: CorenetTrainPoint[];
  /**
   * Validation epoch summaries, at the step of the checkpoint saved just before them ("Checkpoints
   * saved after N updates"), else at the last training step logged before them.
   */
  val: { step: number; loss: number; losses: Record<string, number> }[];
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: an ANSI colour code starts with ESC (0x1b)
const ANSI = /\x1b\[[0-9;]*m/g;
const NUM = String.raw`[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|nan|inf)`;

function num(s: string): number {
  return s === 'nan' ? NaN : s === 'inf' || s === '+inf' ? Infinity : s === '-inf' ? -Infinity : Number(s);
}

/** A metric value as CoreNet prints it: a number, or a Python dict of numbers. */
function metricValue(text: string): Record<string, number> | number | undefined {
  const t = text.trim();
  if (t.startsWith('{')) {
    const out: Record<string, number> = {};
    for (const m of t.matchAll(new RegExp(String.raw`'([^']+)':\s*(?:tensor\()?(${NUM})`, 'g'))) out[m[1]] = num(m[2]);
    return Object.keys(out).length ? out : undefined;
  }
  const m = new RegExp(`^(${NUM})`).exec(t);
  return m ? num(m[1]) : undefined;
}

/** The text after `name: ` (or `name=`) up to the next top-level `, ` / ` || ` separator. */
function field(line: string, name: string, sep: ':' | '='): string | undefined {
  const re = new RegExp(String.raw`(?:^|[\s,|])${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}${sep === ':' ? ': ' : '='}`);
  const m = re.exec(line);
  if (!m) return undefined;
  let i = m.index + m[0].length, depth = 0;
  const start = i;
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === '{' || c === '[' || c === '(') depth++;
    else if (c === '}' || c === ']' || c === ')') depth--;
    else if (depth === 0 && (line.startsWith(', ', i) || line.startsWith(' || ', i))) break;
  }
  return line.slice(start, i);
}

function lossOf(v: Record<string, number> | number | undefined): { loss: number; losses: Record<string, number> } | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return { loss: v, losses: { total_loss: v } };
  const loss = v.total_loss ?? v.loss;
  return loss === undefined ? undefined : { loss, losses: v };
}

export function parseCorenetLog(text: string, what = 'CoreNet log'): CorenetLog {
  const out: CorenetLog = { train: [], val: [] };
  let inValidation = false, awaitSummary = false, savedAt = 0;
  const lines = text.replace(ANSI, '').split(/\r?\n/);
  for (const line of lines) {
    if (awaitSummary) {
      // The line after "*** Validation summary": a tab, then `loss={...} || other=...`.
      const l = lossOf(metricValue(field(line, 'loss', '=') ?? ''));
      if (l) out.val.push({ step: Math.max(savedAt, out.train.length ? out.train[out.train.length - 1].step : 0), ...l });
      awaitSummary = false;
      continue;
    }
    const saved = /Checkpoints saved after (\d+) updates/.exec(line);
    if (saved) { savedAt = Number(saved[1]); continue; }
    if (/ - Validation epoch \d+/.test(line)) { inValidation = true; continue; }
    if (/ - Training epoch \d+/.test(line)) { inValidation = false; continue; }
    if (/\*\*\* Validation summary for epoch \d+/.test(line)) { inValidation = false; awaitSummary = true; continue; }
    if (inValidation) continue;
    const ep = /Epoch:\s*(\d+)\s*\[\s*(\d+)\s*\/\s*(\d+)\s*\]/.exec(line);
    if (!ep) continue;
    const l = lossOf(metricValue(field(line, 'loss', ':') ?? ''));
    if (!l) continue;
    const p: CorenetTrainPoint = { epoch: Number(ep[1]), step: Number(ep[2]), maxSteps: Number(ep[3]), ...l };
    const lr = field(line, 'LR', ':');
    if (lr !== undefined) {
      const m = new RegExp(NUM).exec(lr);
      if (m) p.lr = num(m[0]);
    }
    const g = metricValue(field(line, 'grad_norm', ':') ?? '');
    if (typeof g === 'number') p.gradNorm = g;
    const el = /Elapsed time:\s*(\d+\.?\d*)/.exec(line);
    if (el) p.elapsed = Number(el[1]);
    out.train.push(p);
  }
  if (!out.train.length) throw new OpenELMError('data', `${what}: no CoreNet training lines found ("Epoch: N [step/max], loss: ..., LR: ...")`);
  return out;
}
