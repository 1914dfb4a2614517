// The results table in lm-eval's markdown layout (|Tasks|Version|Filter|n-shot|Metric|Value| |Stderr|),
// optionally with Apple's reported number and the difference beside ours.

import type { TaskResult } from './evaluator.js';
import { paperScore, type PaperVariant } from './paper-results.js';
import { GROUPS } from './tasks/index.js';

const METRIC_ORDER = ['acc', 'acc_norm', 'acc_bytes', 'perplexity'];

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
      const row = [i === 0 ? name : '', i === 0 ? 'dc90fec' : '', i === 0 ? 'none' : '', i === 0 ? String(r.num_fewshot) : '', m, fmt(v),
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
