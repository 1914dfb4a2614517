// Fine-tuning in the page: the seam between the app (data, settings, a loss plot, saving) and the
// code that trains an adapter. The app and its worker protocol speak only this interface; the LoRA
// trainer registers itself with registerFineTuner and is then offered in the fine-tune tab. With no
// trainer registered the tab says so and training is off.
//
// Integration point (LoRA, branch `peft`): a FineTuner that builds the adapter on the loaded
// model's backend (adapters/), tokenizes `data` with the -Instruct template and loss masks on the
// answers (the sft data code for chat examples), runs `steps` optimizer steps calling onStep after
// each, and hands back the adapter as PEFT files (adapter_config.json + adapter_model.safetensors).

import { OpenELMError } from '../core/errors.js';
import type { LoadedModel } from '../loaded-model.js';

/** Training text as the user gave it: plain text, JSONL records, or chat examples (JSONL of {messages}). */
export interface FineTuneData {
  format: 'text' | 'jsonl' | 'chat';
  content: string;
}

export interface FineTuneSettings {
  method: 'lora' | 'dora';
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
  /** Generate with the adapter (true) or the base model (false). */
  use(on: boolean): void;
  /** The adapter as PEFT writes it. */
  files(): Promise<AdapterFile[]>;
  dispose(): void;
}

export interface FineTuner {
  /** Methods it can train. */
  readonly methods: readonly FineTuneSettings['method'][];
  prepare(model: LoadedModel, data: FineTuneData, settings: FineTuneSettings): Promise<FineTuneJob>;
}

let tuner: FineTuner | undefined;

/** Offer `t` to the page (the adapters code calls this when it is bundled in). */
export function registerFineTuner(t: FineTuner): void { tuner = t; }

export function fineTuner(): FineTuner | undefined { return tuner; }

/** The registered trainer, or the error the page shows when there is none. */
export function requireFineTuner(): FineTuner {
  if (!tuner) throw new OpenELMError('finetune', 'LoRA training is not part of this build yet: the page can chat, but the adapter trainer has not been bundled in');
  return tuner;
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
