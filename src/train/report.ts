// The run report: one self-contained HTML file (inline SVG, no scripts, no external assets) with
// the loss and learning-rate curves and a summary of the run. Rewritten at every checkpoint and at
// the end, atomically, so it can be opened in a browser while training goes on.

import * as path from 'node:path';
import { writeFileAtomicSync } from '../io/atomic.js';

export interface MetricLine {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens: number;
  tokens_per_s: number;
  val_loss?: number;
  /** In-loop evaluation (recipe eval_tasks): per task, its numeric results. */
  eval?: Record<string, Record<string, number>>;
  /** Task metrics beside the loss (DPO: rewards/*, logps/*; val_ prefixed for validation); `eval` is the one non-number. */
  [metric: string]: number | Record<string, Record<string, number>> | undefined;
}

/** A task metric of a line (`rewards/margins`, `val_loss`, …): a number, else undefined. */
export function metricValue(m: MetricLine, key: string): number | undefined {
  const v = m[key];
  return typeof v === 'number' ? v : undefined;
}

export interface ReportInfo {
  title: string;
  status: string;
  /** Label → value rows for the summary table. */
  summary: [string, string][];
  notes?: string[];
}

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** Markers at every point, joined by a dashed line. */
  dots?: boolean;
  /** SVG stroke-dasharray for a plain line (e.g. "6 3"). */
  dash?: string;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  xLabel: string;
  yLabel: string;
  /** Tick label of an x value (default: 3 significant digits). */
  fmtX?: (x: number) => string;
  /** Draw the series names inside the chart (default true). */
  legend?: boolean;
}

export const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

export function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-2) return v.toExponential(1).replace('e+', 'e');
  return Number(v.toPrecision(3)).toString();
}

/** A line chart as an SVG element. */
export function lineChart(series: Series[], opts: ChartOptions): string {
  const W = opts.width ?? 720, H = opts.height ?? 300, L = 64, R = 16, T = 16, B = 44;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (!pts.length) return `<svg width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg"><text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no data yet</text></svg>`;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y0 = Math.min(...pts.map((p) => p[1])), y1 = Math.max(...pts.map((p) => p[1]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const pad = (y1 - y0) * 0.05; y0 -= pad; y1 += pad;
  const fmtX = opts.fmtX ?? fmt;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [`<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">`];
  out.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fff" stroke="#ccc"/>`);
  const ys = niceStep(y1 - y0, 6);
  for (let y = Math.ceil(y0 / ys) * ys; y <= y1; y += ys) {
    out.push(`<line x1="${L}" x2="${W - R}" y1="${sy(y).toFixed(1)}" y2="${sy(y).toFixed(1)}" stroke="#eee"/>`);
    out.push(`<text x="${L - 6}" y="${(sy(y) + 4).toFixed(1)}" text-anchor="end" fill="#444">${fmt(y)}</text>`);
  }
  const xs = niceStep(x1 - x0, 8);
  for (let x = Math.ceil(x0 / xs) * xs; x <= x1; x += xs) {
    out.push(`<line x1="${sx(x).toFixed(1)}" x2="${sx(x).toFixed(1)}" y1="${H - B}" y2="${H - B + 4}" stroke="#888"/>`);
    out.push(`<text x="${sx(x).toFixed(1)}" y="${H - B + 16}" text-anchor="middle" fill="#444">${esc(fmtX(x))}</text>`);
  }
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" fill="#222">${esc(opts.xLabel)}</text>`);
  out.push(`<text x="14" y="${(T + H - B) / 2}" text-anchor="middle" fill="#222" transform="rotate(-90 14 ${(T + H - B) / 2})">${esc(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (!p.length) return;
    const line = p.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    if (s.dots) {
      for (const [x, y] of p) out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
      if (p.length > 1) out.push(`<polyline fill="none" stroke="${s.color}" stroke-dasharray="4 3" stroke-width="1.2" points="${line}"/>`);
    } else {
      out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.6"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${line}"/>`);
    }
    if (opts.legend !== false) out.push(`<rect x="${W - R - 130}" y="${T + 8 + i * 16}" width="10" height="10" fill="${s.color}"/><text x="${W - R - 115}" y="${T + 17 + i * 16}" fill="#222">${esc(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

export function renderReport(metrics: MetricLine[], info: ReportInfo): string {
  const loss: Series = { name: 'train loss', color: '#1f77b4', points: metrics.map((m) => [m.step, m.loss]) };
  const val: Series = { name: 'validation loss', color: '#d62728', dots: true, points: metrics.filter((m) => m.val_loss !== undefined).map((m) => [m.step, m.val_loss!]) };
  const lr: Series = { name: 'learning rate', color: '#2ca02c', points: metrics.map((m) => [m.step, m.lr]) };
  const tps: Series = { name: 'tokens / s', color: '#9467bd', points: metrics.map((m) => [m.step, m.tokens_per_s]) };
  const evalKeys: [string, string][] = [];
  for (const m of metrics) for (const [task, r] of Object.entries(m.eval ?? {})) {
    for (const k of ['acc', 'acc_norm', 'perplexity']) if (r[k] !== undefined && !evalKeys.some(([t, x]) => t === task && x === k)) evalKeys.push([task, k]);
  }
  const evalCharts = evalKeys.map(([task, k]) => `<h3>${esc(task)} ${esc(k)}</h3>\n${lineChart([{
    name: `${task} ${k}`, color: '#ff7f0e', dots: true, points: metrics.filter((m) => m.eval?.[task]?.[k] !== undefined).map((m) => [m.step, m.eval![task][k]]),
  }], { xLabel: 'step', yLabel: k, height: 200, legend: false })}`).join('\n');
  // DPO: the reward margin and accuracy (TRL's rewards/*), train and validation
  const series = (key: string, name: string, color: string, dots = false): Series =>
    ({ name, color, dots, points: metrics.filter((m) => metricValue(m, key) !== undefined).map((m) => [m.step, metricValue(m, key)!]) });
  const rewards = [series('rewards/margins', 'reward margin', '#ff7f0e'), series('rewards/accuracies', 'reward accuracy', '#17becf'),
    series('val_rewards/margins', 'validation margin', '#d62728', true), series('val_rewards/accuracies', 'validation accuracy', '#8c564b', true)].filter((x) => x.points.length);
  const rows = info.summary.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('\n');
  const notes = (info.notes ?? []).map((n) => `<li>${esc(n)}</li>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(info.title)}</title>
<style>body{font-family:sans-serif;max-width:780px;margin:2em auto;color:#222}table{border-collapse:collapse}th{text-align:left;padding:2px 12px 2px 0;font-weight:600}td{padding:2px 0}h2{margin-top:1.6em;font-size:1.1em}</style>
</head><body>
<h1>${esc(info.title)}</h1>
<p>${esc(info.status)}</p>
<table>
${rows}
</table>
${notes ? `<ul>\n${notes}\n</ul>` : ''}
<h2>Loss</h2>
${lineChart(val.points.length ? [loss, val] : [loss], { xLabel: 'step', yLabel: 'loss' })}
${rewards.length ? `<h2>Rewards</h2>\n${lineChart(rewards, { xLabel: 'step', yLabel: 'margin / accuracy', height: 260 })}\n` : ''}<h2>Learning rate</h2>
${lineChart([lr], { xLabel: 'step', yLabel: 'learning rate', height: 220 })}
<h2>Throughput</h2>
${lineChart([tps], { xLabel: 'step', yLabel: 'tokens / s', height: 220 })}
${evalKeys.length ? `<h2>In-loop evaluation</h2>\n${evalCharts}` : ''}
</body></html>
`;
}

export function writeReport(outDir: string, metrics: MetricLine[], info: ReportInfo): string {
  const file = path.join(outDir, 'report.html');
  writeFileAtomicSync(file, renderReport(metrics, info));
  return file;
}
