// Fine-tuning in the page: the seam between the app (data, settings, a loss plot, saving) and the
// code that trains. The app and its worker protocol speak only this interface; trainers register
// themselves per method with registerFineTuner and are then offered in the fine-tune tab.
//
// The browser entry registers LoRA/DoRA (lora-finetune.ts: PEFT files) and full-model training
// (full-finetune.ts: a model folder); both train on trainingWindows (finetune-data.ts).

import { OpenELMError } from '../core/errors.js';
import type { LoadedModel } from '../loaded-model.js';

/** Training text as the user gave it: plain text, JSONL records, or chat examples (JSONL of {messages}). */
export interface FineTuneData {
  format: 'text' | 'jsonl' | 'chat';
  content: string;
}

export type FineTuneMethod = 'lora' | 'dora' | 'full';

export interface FineTuneSettings {
  /** lora / dora: an adapter on the frozen model; full: every weight. */
  method: FineTuneMethod;
  rank: number;
  alpha: number;
  dropout: number;
  /** Modules to adapt, by Apple's names (qkv_proj, out_proj, proj_1, proj_2). */
  targets: string[];
  learningRate: number;
  steps: number;
  batchSize: number;
  /** Tokens per training sequence. */
  sequenceLength: number;
  seed: number;
}

export const DEFAULT_FINETUNE: FineTuneSettings = {
  method: 'lora', rank: 8, alpha: 16, dropout: 0, targets: ['qkv_proj', 'out_proj', 'proj_1', 'proj_2'],
  learningRate: 2e-4, steps: 60, batchSize: 4, sequenceLength: 256, seed: 0,
};

export interface FineTuneStep {
  step: number;
  steps: number;
  loss: number;
  learningRate: number;
  /** Tokens trained on in this step. */
  tokens: number;
  ms: number;
}

export interface AdapterFile { name: string; bytes: Uint8Array; }

/** One prepared training run on a loaded model. */
export interface FineTuneJob {
  /** Examples and tokens the data yielded. */
  readonly examples: number;
  readonly tokens: number;
  /** Train until done or aborted; onStep is called after every optimizer step. */
  run(onStep: (s: FineTuneStep) => void, signal: AbortSignal): Promise<void>;
  /** The model to generate with from now on: the tuned one (true) or the base model (false). */
  use(on: boolean): Promise<LoadedModel>;
  /** What was trained as files to save: a PEFT adapter, or for full training a model folder. */
  files(): Promise<AdapterFile[]>;
  dispose(): void;
}

export interface FineTuner {
  /** Methods it can train. */
  readonly methods: readonly FineTuneMethod[];
  prepare(model: LoadedModel, data: FineTuneData, settings: FineTuneSettings): Promise<FineTuneJob>;
}

const tuners = new Map<FineTuneMethod, FineTuner>();

/** Offer `t` to the page for each of its methods (a later registration for a method replaces the earlier one). */
export function registerFineTuner(t: FineTuner): void { for (const m of t.methods) tuners.set(m, t); }

/** The methods some registered trainer offers, adapters first. */
export function fineTuneMethods(): FineTuneMethod[] {
  return (['lora', 'dora', 'full'] as const).filter((m) => tuners.has(m));
}

export function fineTuner(method: FineTuneMethod): FineTuner | undefined { return tuners.get(method); }

/** The trainer for `method`, or the error the page shows when there is none. */
export function requireFineTuner(method: FineTuneMethod): FineTuner {
  const t = tuners.get(method);
  if (!t) {
    const have = fineTuneMethods();
    throw new OpenELMError('finetune', `${method === 'full' ? 'full-model' : method === 'lora' ? 'LoRA' : 'DoRA'} training is not part of this build` +
      (have.length ? ` (it trains: ${have.join(', ')})` : ''));
  }
  return t;
}

/**
 * Check the data before a run: the number of examples, or a one-line error naming the line at
 * fault. Only the shape is checked here; the trainer tokenizes.
 */
export function checkFineTuneData(d: FineTuneData): { examples: number } {
  const text = d.content;
  if (!text.trim()) throw new OpenELMError('finetune', 'the training data is empty: paste text or load a file');
  if (d.format === 'text') return { examples: text.split(/\n\s*\n/).filter((p) => p.trim()).length };
  let n = 0;
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec: unknown;
    try { rec = JSON.parse(line); } catch {
      throw new OpenELMError('finetune', `line ${i + 1} is not valid JSON`);
    }
    if (!rec || typeof rec !== 'object' || Array.isArray(rec)) throw new OpenELMError('finetune', `line ${i + 1} is not a JSON object`);
    const r = rec as Record<string, unknown>;
    if (d.format === 'chat') {
      const ok = Array.isArray(r.messages) && r.messages.length > 0 && r.messages.every((m) =>
        m && typeof m === 'object' && typeof (m as { role?: unknown }).role === 'string' && typeof (m as { content?: unknown }).content === 'string');
      if (!ok) throw new OpenELMError('finetune', `line ${i + 1}: a chat example needs "messages": [{"role", "content"}, ...]`);
    } else if (typeof r.text !== 'string' && !(typeof r.prompt === 'string' && typeof r.completion === 'string')) {
      throw new OpenELMError('finetune', `line ${i + 1}: a record needs "text", or "prompt" and "completion"`);
    }
    n++;
  });
  return { examples: n };
}
