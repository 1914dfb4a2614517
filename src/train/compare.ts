// `openelm report`: several training runs on one page (self-contained HTML, inline SVG, no scripts):
// training and validation loss, learning rate, throughput, gradient norm and in-loop evaluation
// against tokens (or steps), a table of final figures, and optionally CoreNet training logs overlaid.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { readJsonFile } from '../io/json.js';
import { parameterCount, resolveConfig } from '../model/config.js';
import type { CorenetLog } from '../formats/corenet-log.js';
import { esc, fmt, lineChart, type MetricLine, type Series } from './report.js';
import { findLatestCheckpoint } from './state.js';

export interface RunData {
  name: string;
  dir: string;
  metrics: MetricLine[];
  /** From the newest checkpoint, when there is one. */
  params?: number;
  layers?: number;
  heads?: number[];
  ffn?: number[];
  seed?: number;
  trainMs?: number;
}

export interface AgainstLog {
  name: string;
  log: CorenetLog;
  /** Tokens per CoreNet iteration, to place it on the tokens axis. */
  tokensPerStep: number;
}

export interface CompareOptions {
  title?: string;
  x?: 'tokens' | 'step';
  against?: AgainstLog[];
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
const AGAINST_COLORS = ['#222222', '#666666', '#999999'];

/** Read a training out_dir: metrics.jsonl (required) and the newest checkpoint's config and state. */
export function readRun(dir: string): RunData {
  const file = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(dir)) throw new OpenELMError('usage', `run folder ${dir} does not exist`);
  if (!fs.existsSync(file)) throw new OpenELMError('usage', `${dir} has no metrics.jsonl (is it a training out_dir?)`);
  const metrics: MetricLine[] = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const lastLine = lines.map((l) => l.trim() !== '').lastIndexOf(true);
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let m: MetricLine;
    try { m = JSON.parse(line) as MetricLine; } catch {
      // The last line of a run that is still writing (or was killed) may be cut short.
      if (i === lastLine) return;
      throw new OpenELMError('data', `${file}:${i + 1} is not JSON`);
    }
    if (typeof m.step === 'number' && typeof m.loss === 'number') metrics.push(m);
  });
  const run: RunData = { name: path.basename(path.resolve(dir)), dir, metrics };
  const ck = findLatestCheckpoint(dir);
  if (ck) {
    try {
      const cfg = resolveConfig(readJsonFile(path.join(ck, 'config.json'), 'model config'));
      Object.assign(run, { params: parameterCount(cfg), layers: cfg.numLayers, heads: cfg.numQueryHeads, ffn: cfg.ffnDims });
      const st = readJsonFile(path.join(ck, 'trainer_state.json'), 'trainer state') as { trainMs?: number; recipe?: { seed?: number } };
      run.trainMs = st.trainMs;
      run.seed = st.recipe?.seed;
    } catch { /* a run without a readable checkpoint still has its curves */ }
  }
  return run;
}

/** Distinct display names: folder names, or enough of the path to tell runs apart. */
export function nameRuns(runs: RunData[]): void {
  const base = runs.map((r) => path.basename(path.resolve(r.dir)));
  runs.forEach((r, i) => {
    r.name = base.filter((b) => b === base[i]).length > 1 ? path.relative(process.cwd(), path.resolve(r.dir)) || base[i] : base[i];
  });
}

export function fmtCount(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${Number((v / 1e9).toPrecision(3))}B`;
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e3) return `${Number((v / 1e3).toPrecision(3))}k`;
  return fmt(v);
}

function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

/** Mean training loss over the last `frac` of the steps logged (the final line alone is noisy). */
export function tailLoss(ms: MetricLine[], frac = 0.1): number | undefined {
  if (!ms.length) return undefined;
  const last = ms[ms.length - 1].step;
  const from = last - Math.max(1, Math.round(last * frac));
  // Each line's loss is the mean since the previous line: weight it by the steps it covers.
  let sum = 0, n = 0, prev = 0;
  for (const m of ms) {
    const span = m.step - prev;
    prev = m.step;
    if (m.step <= from) continue;
    sum += m.loss * span; n += span;
  }
  return n ? sum / n : undefined;
}

/** The headline metric of an eval task result: acc_norm, else acc, else perplexity. */
function evalMetrics(runs: RunData[]): [string, string][] {
  const out: [string, string][] = [];
  const seen = new Set<string>();
  for (const r of runs) for (const m of r.metrics) for (const [task, res] of Object.entries(m.eval ?? {})) {
    for (const k of ['acc', 'acc_norm', 'perplexity']) {
      if (res[k] === undefined || seen.has(`${task}/${k}`)) continue;
      seen.add(`${task}/${k}`);
      out.push([task, k]);
    }
  }
  return out.sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]));
}

export function renderComparison(runs: RunData[], opts: CompareOptions = {}): string {
  if (!runs.length) throw new OpenELMError('usage', 'openelm report needs at least one run folder');
  const xKind = opts.x ?? 'tokens';
  const X = (m: MetricLine) => (xKind === 'tokens' ? m.tokens : m.step);
  const xLabel = xKind === 'tokens' ? 'tokens (loss-bearing)' : 'step';
  const fmtX = xKind === 'tokens' ? fmtCount : fmt;
  const color = (i: number) => COLORS[i % COLORS.length];
  const against = opts.against ?? [];
  const ax = (a: AgainstLog, step: number) => (xKind === 'tokens' ? step * a.tokensPerStep : step);
  const agColor = (i: number) => AGAINST_COLORS[i % AGAINST_COLORS.length];

  const chart = (series: Series[], yLabel: string, extra: { height?: number } = {}) =>
    lineChart(series, { xLabel, yLabel, fmtX, legend: false, width: 900, height: extra.height ?? 320 });

  const train: Series[] = runs.map((r, i) => ({ name: r.name, color: color(i), points: r.metrics.map((m) => [X(m), m.loss]) }));
  const agTrain: Series[] = against.map((a, i) => ({ name: a.name, color: agColor(i), dash: '6 3', points: a.log.train.map((p) => [ax(a, p.step), p.loss]) }));
  const val: Series[] = runs.map((r, i) => ({ name: r.name, color: color(i), dots: true, points: r.metrics.filter((m) => m.val_loss !== undefined).map((m) => [X(m), m.val_loss!]) }));
  const agVal: Series[] = against.map((a, i) => ({ name: a.name, color: agColor(i), dots: true, points: a.log.val.map((p) => [ax(a, p.step), p.loss]) }));
  const lr: Series[] = runs.map((r, i) => ({ name: r.name, color: color(i), points: r.metrics.map((m) => [X(m), m.lr]) }));
  const agLr: Series[] = against.map((a, i) => ({ name: a.name, color: agColor(i), dash: '6 3', points: a.log.train.filter((p) => p.lr !== undefined).map((p) => [ax(a, p.step), p.lr!]) }));
  const tps: Series[] = runs.map((r, i) => ({ name: r.name, color: color(i), points: r.metrics.map((m) => [X(m), m.tokens_per_s]) }));
  const gn: Series[] = runs.map((r, i) => ({ name: r.name, color: color(i), points: r.metrics.map((m) => [X(m), m.grad_norm]) }));
  const agGn: Series[] = against.map((a, i) => ({ name: a.name, color: agColor(i), dash: '6 3', points: a.log.train.filter((p) => p.gradNorm !== undefined).map((p) => [ax(a, p.step), p.gradNorm!]) }));

  // The late part of training, where runs differ by a little: the second half of the x range.
  const secondHalf = (ss: Series[]): Series[] => {
    const xs = ss.flatMap((s) => s.points.map((p) => p[0]));
    const cut = xs.length ? Math.max(...xs) / 2 : 0;
    return ss.map((s) => ({ ...s, points: s.points.filter((p) => p[0] >= cut) }));
  };

  const legend = [
    ...runs.map((r, i) => `<li><span class="sw" style="background:${color(i)}"></span>${esc(r.name)} <span class="dim">${esc(r.dir)}</span></li>`),
    ...against.map((a, i) => `<li><span class="sw dash" style="border-color:${agColor(i)}"></span>${esc(a.name)} <span class="dim">CoreNet log; ${xKind === 'tokens' ? `${fmtCount(a.tokensPerStep)} tokens per iteration; ` : ''}its loss is the running mean since the start of the epoch</span></li>`),
  ].join('\n');

  const evalKeys = evalMetrics(runs);
  const head = ['run', 'parameters', 'heads / FFN per layer', 'seed', 'steps', 'tokens', 'final loss', 'loss, last 10%', 'final val loss', 'best val loss', 'tokens/s', 'training time',
    ...evalKeys.map(([t, k]) => `${t} ${k}`)];
  const rows = runs.map((r, i) => {
    const ms = r.metrics, last = ms[ms.length - 1];
    const vals = ms.filter((m) => m.val_loss !== undefined);
    const best = vals.length ? vals.reduce((a, b) => (b.val_loss! < a.val_loss! ? b : a)) : undefined;
    const finalEval = [...ms].reverse().find((m) => m.eval)?.eval ?? {};
    const steps = ms.reduce((s, m, j) => s + (m.step - (j ? ms[j - 1].step : 0)), 0);
    const meanTps = steps ? ms.reduce((s, m, j) => s + m.tokens_per_s * (m.step - (j ? ms[j - 1].step : 0)), 0) / steps : undefined;
    const arch = r.heads && r.ffn ? `${r.heads.join(' ')} / ${r.ffn.join(' ')}` : '-';
    const cells = [
      `<span class="sw" style="background:${color(i)}"></span>${esc(r.name)}`,
      r.params !== undefined ? r.params.toLocaleString('en-US') : '-', esc(arch), r.seed ?? '-',
      last ? last.step : '-', last ? last.tokens.toLocaleString('en-US') : '-',
      last ? last.loss.toFixed(4) : '-', tailLoss(ms)?.toFixed(4) ?? '-',
      vals.length ? vals[vals.length - 1].val_loss!.toFixed(4) : '-',
      best ? `${best.val_loss!.toFixed(4)} (step ${best.step})` : '-',
      meanTps !== undefined ? Math.round(meanTps).toLocaleString('en-US') : '-', fmtMs(r.trainMs),
      ...evalKeys.map(([t, k]) => (finalEval[t]?.[k] !== undefined ? finalEval[t][k].toFixed(4) : '-')),
    ];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  const agRows = against.map((a, i) => {
    const last = a.log.train[a.log.train.length - 1];
    const v = a.log.val[a.log.val.length - 1];
    const cells = [`<span class="sw dash" style="border-color:${agColor(i)}"></span>${esc(a.name)}`, '-', '-', '-', last.step, xKind === 'tokens' ? `≈ ${(last.step * a.tokensPerStep).toLocaleString('en-US')}` : '-',
      `${last.loss.toFixed(4)} (running mean)`, '-', v ? v.loss.toFixed(4) : '-', '-', '-', last.elapsed !== undefined ? fmtMs(last.elapsed * 1000) : '-', ...evalKeys.map(() => '-')];
    return `<tr>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });

  const evalCharts = evalKeys.map(([task, k]) => {
    const ss: Series[] = runs.map((r, i) => ({ name: r.name, color: color(i), dots: true, points: r.metrics.filter((m) => m.eval?.[task]?.[k] !== undefined).map((m) => [X(m), m.eval![task][k]]) }));
    return `<h3>${esc(task)} ${esc(k)}</h3>\n${chart(ss, k, { height: 220 })}`;
  }).join('\n');

  const title = opts.title ?? `OpenELM runs: ${runs.map((r) => r.name).join(', ')}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}table{border-collapse:collapse;font-size:13px}th,td{text-align:left;padding:3px 10px 3px 0;border-bottom:1px solid #eee;vertical-align:top}th{font-weight:600}h2{margin-top:1.6em;font-size:1.1em}h3{font-size:1em;margin:1em 0 0}ul.legend{list-style:none;padding:0}ul.legend li{margin:2px 0}.sw{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px}.sw.dash{height:0;border-top:2px dashed;width:16px;vertical-align:3px}.dim{color:#888;font-size:12px}</style>
</head><body>
<h1>${esc(title)}</h1>
<ul class="legend">
${legend}
</ul>
<h2>Final figures</h2>
<table>
<tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${[...rows, ...agRows].join('\n')}
</table>
<p class="dim">final loss: the last metrics line (the mean since the line before it); loss, last 10%: the mean over the last tenth of the steps; tokens/s: mean over the run, training steps only.</p>
<h2>Training loss</h2>
${chart([...train, ...agTrain], 'loss')}
<h2>Validation loss</h2>
${chart([...val, ...agVal], 'validation loss')}
<h2>Loss, second half (zoomed)</h2>
${chart(secondHalf([...train, ...val]), 'loss')}
<h2>Learning rate</h2>
${chart([...lr, ...agLr], 'learning rate', { height: 220 })}
<h2>Throughput</h2>
${chart(tps, 'tokens / s', { height: 220 })}
<h2>Gradient norm (before clipping)</h2>
${chart([...gn, ...agGn], 'gradient norm', { height: 220 })}
${evalKeys.length ? `<h2>In-loop evaluation</h2>\n${evalCharts}` : ''}
</body></html>
`;
}
