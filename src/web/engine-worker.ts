// The app's engine: a module Web Worker that loads the model and runs every generation, so the page
// never freezes, and so the WASM backend may use threads (only a worker may block on Atomics.wait).
// One request runs at a time; 'stop' aborts the running generation or training between steps.

import '../browser/platform.js';
import { browserPlatform, threadsUnavailableReason } from '../browser/platform.js';
import { inspectModel, loadModel, type BrowserLoadOptions, type LoadProgress } from '../browser/load.js';
import { clearModelCache, deleteKept, keptStorage, listModelCache, storageEstimate } from '../browser/downloads.js';
import { backendNames } from '../backends/index.js';
import { fineTuneMethods, requireFineTuner, checkFineTuneData, type FineTuneJob } from '../browser/finetune.js';
import '../browser/full-finetune.js';
import '../browser/lora-finetune.js';
import { OpenELMError } from '../core/errors.js';
import { parameterCount } from '../model/config.js';
import type { ChatSession } from '../chat/session.js';
import type { LoadedModel } from '../loaded-model.js';
import type { ModelPlan } from '../browser/plan.js';
import type { FromEngine, LoadSettings, ModelRef, PlanSummary, RunStats, Sampling, ToEngine } from './protocol.js';
import type { GenerationResult } from '../generate/generate.js';
import type { TextStream } from '../chat/text-stream.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToEngine>) => void) | null;
  postMessage(m: FromEngine, transfer?: Transferable[]): void;
  location: { href: string };
  crossOriginIsolated?: boolean;
}
const scope = globalThis as unknown as WorkerScope;
const post = (m: FromEngine, transfer?: Transferable[]) => scope.postMessage(m, transfer);

let model: LoadedModel | undefined;
let chat: ChatSession | undefined;
let chatSystem = '';
let job: FineTuneJob | undefined;
/** What chat and generate run on: the loaded model, or the fine-tuned one (job.use). */
let active: LoadedModel | undefined;
let running: AbortController | undefined;
let queue: Promise<void> = Promise.resolve();

const TOKENIZER_URL = new URL('./tokenizer.model', import.meta.url);

function loadOptions(s: LoadSettings, ref: ModelRef, signal: AbortSignal): BrowserLoadOptions {
  return {
    backend: s.backend, dtype: s.dtype, keep: s.keep, hubEndpoint: s.hubEndpoint, threads: s.threads,
    gpuLimits: s.gpuMaxBuffer !== undefined ? { maxBufferSize: s.gpuMaxBuffer, maxStorageBufferBindingSize: s.gpuMaxBuffer } : undefined,
    signal, tokenizerUrl: TOKENIZER_URL, label: ref.kind === 'string' ? ref.label : undefined,
  };
}

const source = (ref: ModelRef) => (ref.kind === 'string' ? ref.value : ref.files);

function summary(p: ModelPlan): PlanSummary {
  const { config, tokenizerConfig: _t, weightMap: _w, ...rest } = p;
  return { ...rest, layers: config.numLayers, modelDim: config.modelDim, contextLength: config.maxContextLength, vocab: config.vocabSize };
}

function sampling(s: Partial<Sampling>) {
  return {
    maxTokens: s.maxTokens, temperature: s.temperature, topP: s.topP, topK: s.topK,
    repetitionPenalty: s.repetitionPenalty, seed: s.seed, ignoreEos: s.ignoreEos,
  };
}

function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

async function stream<R extends GenerationResult & { cachedTokens?: number }>(id: number, s: TextStream<R>): Promise<RunStats> {
  for await (const c of s) post({ type: 'chunk', id, text: c.text, ids: c.ids });
  const r: R = await s.result;
  return {
    ids: r.ids, text: r.text, finishReason: r.finishReason, promptTokens: r.promptTokens,
    promptPerSecond: r.timings.prompt_per_second, tokens: r.timings.predicted_n, tokensPerSecond: r.timings.predicted_per_second,
    cachedTokens: r.cachedTokens,
  };
}

function needModel(): LoadedModel {
  if (!model) throw new OpenELMError('usage', 'no model is loaded: pick one in the Model tab');
  return active ?? model;
}

async function handle(m: ToEngine, signal: AbortSignal): Promise<void> {
  switch (m.type) {
    case 'inspect': {
      const plan = await inspectModel(source(m.model), loadOptions(m.settings, m.model, signal));
      post({ type: 'done', id: m.id, plan: summary(plan) });
      return;
    }
    case 'load': {
      const opts = { ...loadOptions(m.settings, m.model, signal), onProgress: (progress: LoadProgress) => post({ type: 'progress', id: m.id, progress }) };
      // A model that cannot load (not a model folder, too large) leaves the current one in place;
      // past that point the current one is dropped first, so two never share the memory.
      opts.onProgress({ phase: 'plan' });
      const plan = await inspectModel(source(m.model), opts);
      if (!plan.fits) throw new OpenELMError('memory', plan.advice ?? `${plan.name} is too large for this browser`);
      job?.dispose(); job = undefined; active = undefined;
      chat = undefined;
      model?.dispose(); model = undefined;
      const lm = await loadModel(source(m.model), { ...opts, plan });
      model = lm;
      post({
        type: 'done', id: m.id, info: {
          name: lm.dir, backend: lm.backend.name, describe: lm.backend.describe(), threads: lm.backend.threads, instruct: lm.isInstruct,
          params: parameterCount(lm.config), contextLength: lm.config.maxContextLength,
          loadMs: lm.loadMs, template: lm.chatTemplate.source,
        },
      });
      return;
    }
    case 'generate': {
      const lm = needModel();
      const stats = await stream(m.id, lm.stream(m.prompt, { ...defined(sampling(m.sampling)), signal }));
      post({ type: 'done', id: m.id, stats });
      return;
    }
    case 'chat': {
      const lm = needModel();
      if (!chat || chatSystem !== m.system) {
        chat = lm.chat(m.system ? { system: m.system } : {});
        chatSystem = m.system;
      }
      const stats = await stream(m.id, chat.stream(m.content, { ...defined(sampling(m.sampling)), signal }));
      post({ type: 'done', id: m.id, stats });
      return;
    }
    case 'reset-chat': {
      chat = model?.chat(m.system ? { system: m.system } : {});
      chatSystem = m.system;
      post({ type: 'done', id: m.id });
      return;
    }
    case 'finetune': {
      needModel();
      const lm = model!;
      const { examples } = checkFineTuneData(m.data);
      const tuner = requireFineTuner(m.settings.method);
      // A new run starts from the loaded model; the previous run's weights go.
      chat = undefined; active = undefined;
      job?.dispose(); job = undefined;
      job = await tuner.prepare(lm, m.data, m.settings);
      let steps = 0;
      await job.run((step) => { steps = step.step; post({ type: 'step', id: m.id, step }); }, signal);
      active = await job.use(true);
      post({ type: 'done', id: m.id, examples, steps });
      return;
    }
    case 'adapter': {
      if (!job) throw new OpenELMError('usage', 'there is no trained adapter yet: train one in the Fine-tune tab');
      if (m.action === 'files') {
        const files = await job.files();
        post({ type: 'done', id: m.id, files });
        return;
      }
      active = await job.use(m.action === 'use');
      chat = undefined;
      post({ type: 'done', id: m.id });
      return;
    }
    case 'cache': {
      if (m.action === 'clear') await clearModelCache();
      if (m.action === 'delete') await deleteKept(m.urls ?? []);
      const est = await storageEstimate();
      post({ type: 'done', id: m.id, cache: { files: await listModelCache(), storage: await keptStorage(), usage: est?.usage ?? null, quota: est?.quota ?? null } });
      return;
    }
    case 'stop':
      return;
  }
}

function fail(id: number, e: unknown): void {
  const loaded = model !== undefined;
  if (e instanceof OpenELMError) post({ type: 'error', id, message: e.message, code: e.code, loaded });
  else if ((e as Error)?.name === 'AbortError') post({ type: 'error', id, message: 'stopped', code: 'abort', loaded });
  else post({ type: 'error', id, message: `internal error: ${e instanceof Error ? e.message : String(e)}`, code: 'internal', loaded });
}

scope.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'stop') { running?.abort(); return; }
  queue = queue.then(async () => {
    const ctl = new AbortController();
    running = ctl;
    try {
      await handle(m, ctl.signal);
    } catch (err) {
      fail(m.id, err);
    } finally {
      if (running === ctl) running = undefined;
    }
  });
};

void keptStorage().then((storage) => post({
  type: 'hello', hello: {
    backends: backendNames(), isolated: scope.crossOriginIsolated === true,
    threads: browserPlatform.spawnKernelWorker ? browserPlatform.cpuCount() : 1, singleThread: threadsUnavailableReason(),
    finetune: fineTuneMethods(), keepDownloads: storage !== null, storage,
  },
}));
