// The results table in lm-eval's markdown layout (|Tasks|Version|Filter|n-shot|Metric|Value| |Stderr|),
// optionally with Apple's reported number and the difference beside ours.

import type { TaskResult } from './evaluator.js';
import { paperScore, type PaperVariant } from './paper-results.js';
import type { SuiteSummary } from './suites.js';
import { GROUPS } from './tasks/index.js';

const METRIC_ORDER = ['acc', 'acc_norm', 'acc_bytes', 'perplexity', 'pct_stereotype', 'likelihood_diff'];

function fmt(v: number): string { return Number.isFinite(v) ? v.toFixed(4) : 'N/A'; }

/** lm-eval's layout: a table of tasks, then (when groups such as mmlu were run) a table of groups. */
export function resultsTable(results: Record<string, TaskResult>, paper?: PaperVariant | null): string {
  const names = Object.keys(results);
  const groups = names.filter((n) => Object.hasOwn(GROUPS, n));
  const tasks = names.filter((n) => !groups.includes(n));
  const out = [table('Tasks', tasks, results, paper)];
  if (groups.length) out.push('', table('Groups', groups, results, paper));
  return out.join('\n');
}

/**
 * A suite's summary: per task the metric the paper reports, Apple's number beside it when known, and
 * the suite average (only when every task ran).
 */
export function suiteTable(s: SuiteSummary, paper?: PaperVariant | null): string {
  const head = ['Task', 'n-shot', 'Metric', 'Value'];
  if (paper) head.push(`Apple ${paper}`, 'Δ');
  const rows = s.tasks.map((t) => {
    const row = [t.task, String(t.shots), t.metric, t.value === null ? 'skipped' : fmt(t.value)];
    if (paper) {
      const p = paperScore(paper, t.task, t.shots);
      const ok = p && p.metric === t.metric;
      row.push(ok ? p.value.toFixed(2) : '', ok && t.value !== null ? signed(t.value * 100 - p.value) : '');
    }
    return row;
  });
  if (paper && s.average !== null) {
    const ps = s.tasks.map((t) => paperScore(paper, t.task, t.shots));
    const pAvg = ps.every((p) => p) ? ps.reduce((a, p) => a + p!.value, 0) / ps.length : null;
    rows.push(['average', '', '', fmt(s.average), pAvg === null ? '' : pAvg.toFixed(2), pAvg === null ? '' : signed(s.average * 100 - pAvg)]);
  } else if (s.average !== null) rows.push(['average', '', '', fmt(s.average)]);
  const skipped = s.tasks.filter((t) => t.value === null).length;
  const title = `Suite ${s.suite}: ${s.title}` + (skipped ? ` (${skipped} of ${s.tasks.length} tasks skipped for missing data, so no average)` : '');
  return [title, grid(head, rows)].join('\n');
}

function signed(x: number): string { return (x >= 0 ? '+' : '') + x.toFixed(2); }

function grid(head: string[], rows: string[][]): string {
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const right = (c: number) => c >= 3;
  const line = (cells: string[]) => '|' + widths.map((w, c) => (right(c) ? (cells[c] ?? '').padStart(w) : (cells[c] ?? '').padEnd(w))).join('|') + '|';
  const sep = '|' + widths.map((w, c) => (right(c) ? '-'.repeat(Math.max(1, w - 1)) + ':' : '-'.repeat(w))).join('|') + '|';
  return [line(head), sep, ...rows.map(line)].join('\n');
}

function table(title: string, names: string[], results: Record<string, TaskResult>, paper?: PaperVariant | null): string {
  const head = [title, 'Version', 'Filter', 'n-shot', 'Metric', 'Value', '', 'Stderr'];
  if (paper) head.push(`Apple ${paper}`, 'Δ');
  const rows: string[][] = [];
  for (const name of names) {
    const r = results[name];
    const metrics = METRIC_ORDER.filter((m) => typeof r[m] === 'number');
    metrics.forEach((m, i) => {
      const v = r[m] as number;
      const se = r[`${m}_stderr`];
      const row = [i === 0 ? name : '', i === 0 ? (r.version as string | undefined) ?? 'dc90fec' : '', i === 0 ? 'none' : '', i === 0 ? String(r.num_fewshot) : '', m, fmt(v),
        typeof se === 'number' ? '±' : '', typeof se === 'number' ? fmt(se) : ''];
      if (paper) {
        const p = paperScore(paper, name, r.num_fewshot);
        if (p && p.metric === m) row.push(p.value.toFixed(2), ((v * 100) - p.value >= 0 ? '+' : '') + ((v * 100) - p.value).toFixed(2));
        else row.push('', '');
      }
      rows.push(row);
    });
  }
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => '|' + cells.map((x, c) => (c >= 5 ? x.padStart(widths[c]) : x.padEnd(widths[c]))).join('|') + '|';
  const sep = '|' + widths.map((w, c) => (c >= 5 ? '-'.repeat(Math.max(1, w - 1)) + ':' : '-'.repeat(w))).join('|') + '|';
  return [line(head), sep, ...rows.map(line)].join('\n');
}
