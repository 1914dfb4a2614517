// Messages between the app's page and its engine worker. Every request carries an id; the worker
// answers it with progress/chunk/step messages and ends it with exactly one 'done' or 'error'.

import type { LoadDType } from '../model/load.js';
import type { LocalFile } from '../browser/model-files.js';
import type { KeptFile, KeptStorage } from '../browser/kept-files.js';
import type { LoadProgress } from '../browser/load.js';
import type { ModelPlan } from '../browser/plan.js';
import type { FineTuneData, FineTuneMethod, FineTuneSettings, FineTuneStep, AdapterFile } from '../browser/finetune.js';

export type ModelRef = { kind: 'string'; value: string; label?: string } | { kind: 'files'; files: LocalFile[] };

export interface LoadSettings {
  backend: string;
  dtype: LoadDType;
  /** Keep downloads in the browser's cache. */
  keep: boolean;
  hubEndpoint?: string;
  threads?: number;
  /** webgpu: a device of its own with its buffer limits lowered to this many bytes (automation hook). */
  gpuMaxBuffer?: number;
}

export interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  seed?: number;
  /** Keep going past EOS (benchmarks). */
  ignoreEos?: boolean;
}

export type ToEngine =
  | { type: 'inspect'; id: number; model: ModelRef; settings: LoadSettings }
  | { type: 'load'; id: number; model: ModelRef; settings: LoadSettings }
  /** A raw completion of `prompt` (no chat template): the automation hook. */
  | { type: 'generate'; id: number; prompt: string; sampling: Partial<Sampling> }
  /** One chat turn; `system` resets the conversation when it differs from the current one. */
  | { type: 'chat'; id: number; content: string; system: string; sampling: Partial<Sampling> }
  | { type: 'reset-chat'; id: number; system: string }
  | { type: 'stop' }
  | { type: 'finetune'; id: number; data: FineTuneData; settings: FineTuneSettings }
  | { type: 'adapter'; id: number; action: 'use' | 'base' | 'files' }
  /** Kept downloads: list them, delete those of `urls`, or delete all. */
  | { type: 'cache'; id: number; action: 'list' | 'clear' | 'delete'; urls?: string[] };

/** The kept downloads, where they are kept, and this site's storage as the browser reports it. */
export interface KeptSummary {
  files: KeptFile[];
  storage: KeptStorage | null;
  /** navigator.storage.estimate(), when the browser says. */
  usage: number | null;
  quota: number | null;
}

/** What the worker tells the page once it starts. */
export interface EngineHello {
  backends: string[];
  isolated: boolean;
  /** Threads the WASM backend will use. */
  threads: number;
  /** Why it is one thread, when it is. */
  singleThread: string | null;
  /** The fine-tuning methods this build trains (browser/finetune.ts); empty: none. */
  finetune: FineTuneMethod[];
  keepDownloads: boolean;
  /** Where downloads are kept: the Origin Private File System, or the Cache API. */
  storage: KeptStorage | null;
}

/** A plan made serializable (plan.ts ModelPlan without the parsed config object's methods). */
export type PlanSummary = Omit<ModelPlan, 'config' | 'tokenizerConfig' | 'weightMap'> & {
  layers: number; modelDim: number; contextLength: number; vocab: number;
};

export interface ModelInfo {
  name: string;
  backend: string;
  describe: string;
  threads: number;
  instruct: boolean;
  params: number;
  contextLength: number;
  loadMs: number;
  template: string;
}

export interface RunStats {
  ids: number[];
  text: string;
  finishReason: string;
  promptTokens: number;
  promptPerSecond: number;
  tokens: number;
  tokensPerSecond: number;
  cachedTokens?: number;
}

export type FromEngine =
  | { type: 'hello'; hello: EngineHello }
  | { type: 'progress'; id: number; progress: LoadProgress }
  | { type: 'chunk'; id: number; text: string; ids: number[] }
  | { type: 'step'; id: number; step: FineTuneStep }
  | { type: 'done'; id: number; plan?: PlanSummary; info?: ModelInfo; stats?: RunStats; files?: AdapterFile[]; cache?: KeptSummary; examples?: number; steps?: number }
  /** `loaded`: whether a model is still loaded after the failure (a failed load drops the old one). */
  | { type: 'error'; id: number; message: string; code: string; loaded: boolean };
