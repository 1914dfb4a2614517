// Apple's reported OpenELM scores (HF model cards / paper tables; docs/evaluation.md), in percent,
// keyed by task and shot count, so `openelm eval --compare-paper` can print them beside ours.
// The metric per task follows the spec's reading of the paper (acc_norm for ARC, HellaSwag and PIQA,
// acc for BoolQ, SciQ, WinoGrande, MMLU and RACE, mc2 for TruthfulQA, pct_stereotype for CrowS-Pairs);
// that choice is itself unverified. The model card swaps the names of the last two tables; the names
// here follow the paper (docs/evaluation.md).

import type { OpenELMConfig } from '../model/config.js';

export type PaperSize = '270M' | '450M' | '1_1B' | '3B';
export type PaperVariant = PaperSize | `${PaperSize}-Instruct`;

export type PaperMetric = 'acc' | 'acc_norm' | 'pct_stereotype';

export interface PaperEntry { task: string; shots: number; metric: PaperMetric; }

/** Column order of the three tables. */
export const ZERO_SHOT: PaperEntry[] = [
  { task: 'arc_challenge', shots: 0, metric: 'acc_norm' },
  { task: 'arc_easy', shots: 0, metric: 'acc_norm' },
  { task: 'boolq', shots: 0, metric: 'acc' },
  { task: 'hellaswag', shots: 0, metric: 'acc_norm' },
  { task: 'piqa', shots: 0, metric: 'acc_norm' },
  { task: 'sciq', shots: 0, metric: 'acc' },
  { task: 'winogrande', shots: 0, metric: 'acc' },
];

export const OPEN_LLM: PaperEntry[] = [
  { task: 'arc_challenge', shots: 25, metric: 'acc_norm' },
  { task: 'hellaswag', shots: 10, metric: 'acc_norm' },
  { task: 'mmlu', shots: 5, metric: 'acc' },
  { task: 'truthfulqa_mc2', shots: 0, metric: 'acc' },
  { task: 'winogrande', shots: 5, metric: 'acc' },
];

export const LLM360: PaperEntry[] = [
  { task: 'arc_challenge', shots: 25, metric: 'acc_norm' },
  { task: 'crows_pairs_english', shots: 25, metric: 'pct_stereotype' },
  { task: 'hellaswag', shots: 10, metric: 'acc_norm' },
  { task: 'mmlu', shots: 5, metric: 'acc' },
  { task: 'piqa', shots: 0, metric: 'acc_norm' },
  { task: 'race', shots: 0, metric: 'acc' },
  { task: 'truthfulqa_mc2', shots: 0, metric: 'acc' },
  { task: 'winogrande', shots: 5, metric: 'acc' },
];

const ZS: Record<PaperVariant, number[]> = {
  '270M': [26.45, 45.08, 53.98, 46.71, 69.75, 84.70, 53.91],
  '270M-Instruct': [30.55, 46.68, 48.56, 52.07, 70.78, 84.40, 52.72],
  '450M': [27.56, 48.06, 55.78, 53.97, 72.31, 87.20, 58.01],
  '450M-Instruct': [30.38, 50.00, 60.37, 59.34, 72.63, 88.00, 58.96],
  '1_1B': [32.34, 55.43, 63.58, 64.81, 75.57, 90.60, 61.72],
  '1_1B-Instruct': [37.97, 52.23, 70.00, 71.20, 75.03, 89.30, 62.75],
  '3B': [35.58, 59.89, 67.40, 72.44, 78.24, 92.70, 65.51],
  '3B-Instruct': [39.42, 61.74, 68.17, 76.36, 79.00, 92.50, 66.85],
};

const OL: Record<PaperVariant, number[]> = {
  '270M': [27.65, 47.15, 25.72, 39.24, 53.83],
  '270M-Instruct': [32.51, 51.58, 26.70, 38.72, 53.20],
  '450M': [30.20, 53.86, 26.01, 40.18, 57.22],
  '450M-Instruct': [33.53, 59.31, 25.41, 40.48, 58.33],
  '1_1B': [36.69, 65.71, 27.05, 36.98, 63.22],
  '1_1B-Instruct': [41.55, 71.83, 25.65, 45.95, 64.72],
  '3B': [42.24, 73.28, 26.76, 34.98, 67.25],
  '3B-Instruct': [47.70, 76.87, 24.80, 38.76, 67.96],
};

const L360: Record<PaperVariant, number[]> = {
  '270M': [27.65, 66.79, 47.15, 25.72, 69.75, 30.91, 39.24, 53.83],
  '270M-Instruct': [32.51, 66.01, 51.58, 26.70, 70.78, 33.78, 38.72, 53.20],
  '450M': [30.20, 68.63, 53.86, 26.01, 72.31, 33.11, 40.18, 57.22],
  '450M-Instruct': [33.53, 67.44, 59.31, 25.41, 72.63, 36.84, 40.48, 58.33],
  '1_1B': [36.69, 71.74, 65.71, 27.05, 75.57, 36.46, 36.98, 63.22],
  '1_1B-Instruct': [41.55, 71.02, 71.83, 25.65, 75.03, 39.43, 45.95, 64.72],
  '3B': [42.24, 73.29, 73.28, 26.76, 78.24, 38.76, 34.98, 67.25],
  '3B-Instruct': [47.70, 72.33, 76.87, 24.80, 79.00, 38.47, 38.76, 67.96],
};

/** Apple's number (percent) for a task at a shot count, with the metric it is in; null if none. */
export function paperScore(variant: PaperVariant, task: string, shots: number): { value: number; metric: PaperMetric } | null {
  for (const [entries, table] of [[ZERO_SHOT, ZS], [OPEN_LLM, OL], [LLM360, L360]] as const) {
    const i = entries.findIndex((e) => e.task === task && e.shots === shots);
    if (i >= 0) return { value: table[variant][i], metric: entries[i].metric };
  }
  return null;
}

const SIZES: { size: PaperSize; layers: number; dim: number }[] = [
  { size: '270M', layers: 16, dim: 1280 },
  { size: '450M', layers: 20, dim: 1536 },
  { size: '1_1B', layers: 28, dim: 2048 },
  { size: '3B', layers: 36, dim: 3072 },
];

/** Which released size a config is (by layer count and width), or null for other shapes. */
export function detectSize(c: Pick<OpenELMConfig, 'numLayers' | 'modelDim'>): PaperSize | null {
  return SIZES.find((s) => s.layers === c.numLayers && s.dim === c.modelDim)?.size ?? null;
}

export function paperVariant(size: PaperSize, instruct: boolean): PaperVariant {
  return instruct ? `${size}-Instruct` : size;
}
