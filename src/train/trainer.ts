// The training loop: gradient accumulation, clipping, the LR schedule and AdamW on a
// TrainableModel, fed by the data pipeline, with metrics, a report, and checkpoints that let a run
// stop anywhere (crash, Ctrl-C, --stop-after) and continue bit-identically with --resume.
//
// Step t (0-based count of completed optimizer steps):
//   lr = schedule(t); zero grads; for each of grad_accum micro-batches: forward+backward with
//   gradScale 1/grad_accum (the mean of micro-batch means, as DDP averages ranks);
//   loss = mean of micro-batch losses; stop on a non-finite loss or gradient norm;
//   clip the global norm; AdamW update.
// Determinism: the data loader never reads ahead, every random stream is a saved Rng, and the
// kernels are deterministic, so the state in a checkpoint fully determines the rest of the run.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { parameterCount, presetHFConfig, resolveConfig, type OpenELMConfig } from '../model/config.js';
import { initParams } from '../model/init.js';
import { readModelConfig } from '../io/model-folder.js';
import { loadTokenizer } from '../io/tokenizer-file.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { AdamW } from './adamw.js';
import { clipGradNorm } from './clip.js';
import { createBackend, type NativeMode } from '../backends/index.js';
import type { Backend, MatmulPrecision } from '../backends/backend.js';
import { WasmBackend } from '../backends/wasm/wasm-backend.js';
import { TrainableModel, type AdapterTraining } from '../model/trainable.js';
import { mixSeed } from '../backends/dropout.js';
import { describeAdapter, loadBaseAndAdapter, preparePeftRun, readAdapterFiles, writeAdapterFiles } from './peft-run.js';
import { constantSchedule, cosineSchedule, type LRSchedule } from './schedule.js';
import { expandDataPath } from './data/files.js';
import { TrainLoader, readRows, rowsToBatch } from './data/loader.js';
import { PAD, createSource, type RowSource, type SourceSpec, type SourceStats } from './data/sources.js';
import { isHubModelId, recipeDifferences, type Recipe, type RecipeSource } from './recipe.js';
import { customConfigDefaults, presetSize } from './presets.js';
import { writeReport, type MetricLine } from './report.js';
import {
  STATE_VERSION, cleanStaleTemps, listCheckpoints, loadNewestIntact, readCheckpoint, writeCheckpoint,
  type CheckpointHooks, type IntervalAccumulator, type LoadedCheckpoint, type TrainerState,
} from './state.js';
import { readJsonFile } from '../io/json.js';

export interface TrainOptions {
  recipe: Recipe;
  /** Continue from out_dir's latest checkpoint (from scratch when there is none yet). */
  resume?: boolean;
  /** Stop after this many completed steps, with a checkpoint, as if interrupted. */
  stopAfter?: number;
  /** The native sgemm (default 'auto': used when built and a BLAS library loads). */
  native?: NativeMode;
  /** Human progress lines (default: stderr). */
  log?: (line: string) => void;
  /** When aborted, the current step finishes, a checkpoint is written and train() returns 'interrupted'. */
  signal?: AbortSignal;
  hooks?: CheckpointHooks;
  tokenizer?: Tokenizer;
}

export interface TrainResult {
  status: 'done' | 'interrupted' | 'stopped';
  step: number;
  steps: number;
  checkpoint: string | null;
  firstLoss?: number;
  lastLoss?: number;
  lastValLoss?: number;
  trainMs: number;
  metricsFile: string;
  reportFile: string;
  config: OpenELMConfig;
  dataStats: { name: string; stats: SourceStats }[];
}

// ------------------------------------------------------------------------------- compute backend

/**
 * The trainable model on the backend the recipe asks for ('auto': the fastest available; the large
 * products go to the native sgemm when it is built). Each output element is computed by one thread
 * in an order fixed by the shapes (WASM tiles; native blocks), so results do not depend on the
 * thread count and --resume is bit-identical.
 */
export async function createTrainableModel(config: OpenELMConfig, opts: { recompute: boolean; threads?: number; native?: NativeMode; backend?: string; precision?: MatmulPrecision; adapter?: AdapterTraining }): Promise<{ model: TrainableModel; backend: Backend }> {
  const backend = await createBackend(opts.backend ?? 'auto', { threads: opts.threads, native: opts.native });
  try {
    return { model: new TrainableModel(config, backend, { recompute: opts.recompute, precision: opts.precision, adapter: opts.adapter }), backend };
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

/** What `precision: bf16` does on this backend (one line for the log). */
export function precisionNote(backend: Backend): string {
  const how = backend instanceof WasmBackend ? backend.native?.bf16 : undefined;
  const where = how === 'dnnl' || how === 'openblas'
    ? `the native bf16 GEMM (${backend.library})`
    : 'bf16-rounded operands through the f32 kernels (no bf16 GEMM here: the same numerics, no speed-up; npm run build:native with libdnnl2 gives one)';
  return `bf16 products with f32 sums on ${where}; f32 master weights, gradients, AdamW state, norms, softmax and loss`;
}

// ------------------------------------------------------------------------------- model setup

export function recipeModelConfig(r: Recipe): OpenELMConfig {
  if (r.model.init !== undefined && isHubModelId(r.model.init)) {
    // Apple's released models need no download to know their geometry.
    if (presetSize(r.model.init)) return resolveConfig(presetHFConfig(r.model.init));
    throw new OpenELMError('recipe', `${r.file}: recipe.model.init ${r.model.init} is downloaded when training starts; its config is not known before`);
  }
  if (r.model.init !== undefined) return readModelConfig(r.model.init);
  const raw = r.model.config !== undefined ? { ...customConfigDefaults(r.seqLen), ...r.model.config } : r.hfConfig!;
  try {
    return resolveConfig(raw);
  } catch (e) {
    if (e instanceof OpenELMError) throw new OpenELMError('recipe', `${r.file}: recipe.model.${r.model.config !== undefined ? 'config' : 'preset'}: ${e.message}`);
    throw e;
  }
}

function loadInitWeights(dir: string, model: TrainableModel): void {
  const ck = openCheckpoint(dir);
  try {
    for (const e of model.layout.entries) {
      ck.expectShape(e.name, e.shape);
      model.setParam(e.name, ck.readF32(e.name));
    }
  } finally { ck.close(); }
}

export function makeSchedule(r: Recipe): LRSchedule {
  const s = r.schedule;
  if (s.type === 'constant') return constantSchedule({ lr: r.optimizer.lr, warmupSteps: s.warmupSteps, warmupInitLr: s.warmupInitLr });
  return cosineSchedule({ maxLr: r.optimizer.lr, minLr: s.minLr, warmupSteps: s.warmupSteps, maxSteps: r.steps, warmupInitLr: s.warmupInitLr });
}

// ------------------------------------------------------------------------------- data setup

function sourceSpecs(list: RecipeSource[], key: string): SourceSpec[] {
  return list.map((s, i) => ({
    name: s.name,
    files: s.absPaths.flatMap((p, j) => expandDataPath(p, s.format, `recipe.data.${key}[${i}].path${s.absPaths.length > 1 ? `[${j}]` : ''}`)),
    format: s.format, textKey: s.textKey, weight: s.weight,
  }));
}

function buildSources(r: Recipe, specs: SourceSpec[], role: 'all' | 'train' | 'valid', tok: Tokenizer, vocab: number, warn?: (line: string) => void): RowSource[] {
  const pipe = { mode: r.pipeline.mode, seqLen: r.seqLen, splitWords: r.pipeline.splitWords, minChars: r.pipeline.minChars, minTokens: r.pipeline.minTokens };
  const training = role !== 'valid';
  return specs.map((s, i) => createSource(s, {
    pipe, split: { role, fraction: r.data.validFraction },
    seed: (r.pipeline.seed * 1000003 + i * 7919 + 17) >>> 0,
    loop: training, shuffleFiles: training && r.pipeline.shuffle, vocabSize: vocab, warn,
  }, tok));
}

/**
 * The training loader a recipe describes (files listed, sources built, nothing read yet). `warn`
 * hears about corrupt input lines as they are skipped.
 */
export function createTrainLoader(r: Recipe, tok: Tokenizer, vocabSize: number, warn?: (line: string) => void): TrainLoader {
  const specs = sourceSpecs(r.data.train, 'train');
  return new TrainLoader(buildSources(r, specs, r.data.validFraction > 0 ? 'train' : 'all', tok, vocabSize, warn),
    { seqLen: r.seqLen, shuffleBuffer: r.pipeline.shuffleBuffer, seed: r.pipeline.seed });
}

/** The validation rows a recipe describes (held-out part of the training sources, or data.valid). */
export async function readValidationRows(r: Recipe, tok: Tokenizer, vocabSize: number): Promise<Int32Array[]> {
  const specs = r.data.valid.length ? sourceSpecs(r.data.valid, 'valid') : r.data.validFraction > 0 ? sourceSpecs(r.data.train, 'train') : [];
  if (!specs.length) return [];
  return readRows(buildSources(r, specs, r.data.valid.length ? 'all' : 'valid', tok, vocabSize), r.data.evalBatches * r.batchSize);
}

// ------------------------------------------------------------------------------- formatting

function fmtDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function describeStats(name: string, s: SourceStats): string {
  const parts = [`${s.chunks} chunks`, `${s.kept} kept`];
  if (s.droppedChars) parts.push(`${s.droppedChars} under min_chars`);
  if (s.droppedTokens) parts.push(`${s.droppedTokens} under min_tokens`);
  if (s.heldOut) parts.push(`${s.heldOut} held out for validation`);
  parts.push(`${s.rows} rows`);
  let line = `data ${name}: ${parts.join(', ')}`;
  if (s.badLines) line += `; ${s.badLines} corrupt line${s.badLines === 1 ? '' : 's'} skipped (first: ${s.badExamples.join('; ')})`;
  return line;
}

function readMetrics(file: string, upTo: number): MetricLine[] {
  if (!fs.existsSync(file)) return [];
  const out: MetricLine[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as MetricLine;
      if (typeof m.step === 'number' && m.step <= upTo) out.push(m);
    } catch { /* a line cut short by a crash */ }
  }
  return out;
}

// ------------------------------------------------------------------------------- the loop

export async function train(opts: TrainOptions): Promise<TrainResult> {
  let r = opts.recipe;
  if (r.model.init !== undefined && isHubModelId(r.model.init)) {
    const hub = await import('../hub/index.js');
    r = { ...r, model: { ...r.model, init: await hub.ensureModel(r.model.init) } };
  }
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const outDir = r.outDir;

  // Everything that can fail on bad input is checked before the model is built.
  const trainSpecs = sourceSpecs(r.data.train, 'train');
  const validSpecs = r.data.valid.length ? sourceSpecs(r.data.valid, 'valid') : r.data.validFraction > 0 ? trainSpecs : [];
  const config = recipeModelConfig(r);
  if (r.seqLen > config.maxContextLength) {
    throw new OpenELMError('recipe', `${r.file}: recipe.seq_len (${r.seqLen}) is longer than the model's max_context_length (${config.maxContextLength})`);
  }
  // adapter runs (recipe.peft): a frozen base from model.init and a LoRA / DoRA adapter (peft-run.ts)
  const peft = r.peft ? preparePeftRun(r, config) : null;
  const tok = opts.tokenizer ?? loadTokenizer(r.model.init);
  const usesText = [...trainSpecs, ...validSpecs].some((s) => s.format !== 'tokens');
  if (usesText && config.vocabSize < tok.vocabSize) {
    throw new OpenELMError('recipe', `${r.file}: the model's vocab_size (${config.vocabSize}) is smaller than the tokenizer's (${tok.vocabSize})`);
  }

  fs.mkdirSync(outDir, { recursive: true });
  cleanStaleTemps(outDir);
  const metricsFile = path.join(outDir, 'metrics.jsonl');
  let resumeDir: string | null = null;
  if (!opts.resume && listCheckpoints(outDir).length) {
    throw new OpenELMError('usage', `${outDir} already holds checkpoints of a run; pass --resume to continue it, or choose another out_dir`);
  }

  const { model, backend } = await createTrainableModel(config, {
    recompute: r.recompute, threads: r.threads, native: opts.native, precision: r.precision,
    adapter: peft ? { settings: peft.settings, baseDtype: peft.baseDtype } : undefined,
  });
  // AdamW and clipping run on the model's backend.
  const opt = new AdamW(backend, model.layout, { beta1: r.optimizer.betas[0], beta2: r.optimizer.betas[1], eps: r.optimizer.eps, weightDecay: r.optimizer.weightDecay });
  const schedule = makeSchedule(r);
  const loader = createTrainLoader(r, tok, config.vocabSize, log);

  let step = 0, tokens = 0, trainMsBefore = 0;
  let interval: IntervalAccumulator = { lossSum: 0, steps: 0, tokens: 0, ms: 0 };
  let metrics: MetricLine[] = [];
  let ck: LoadedCheckpoint | null = null;
  const host = opts.resume ? { params: new Float32Array(model.layout.total), m: new Float32Array(model.layout.total), v: new Float32Array(model.layout.total) } : null;
  if (opts.resume) {
    const found = loadNewestIntact(outDir, (dir) => {
      // The recipe check comes first: a changed recipe is the user's to fix, not a damaged checkpoint.
      const saved = readJsonFile(path.join(dir, 'trainer_state.json'), 'trainer state') as TrainerState;
      const diffs = recipeDifferences(saved.recipe ?? {}, r.canonical);
      if (diffs.length) {
        throw new OpenELMError('usage', `cannot resume: the recipe changed since ${dir} was written (${diffs.join(', ')}); resuming needs the same settings`);
      }
      return readCheckpoint(dir, model.layout, host!.params, host!.m, host!.v, peft ? (d, p) => readAdapterFiles(d, config, model, p) : undefined);
    }, log);
    if (found) { resumeDir = found.dir; ck = found.value; } else log(`no checkpoint in ${outDir} yet: starting from step 0`);
  }
  if (resumeDir && ck) {
    if (peft) loadBaseAndAdapter(model, r.model.init!, peft, r.seed);
    backend.write(model.params, host!.params);
    opt.loadState({ step: ck.optStep, m: host!.m, v: host!.v });
    loader.setState(ck.state.data, ck.dataTensors);
    step = ck.state.step; tokens = ck.state.tokens; interval = ck.state.interval; trainMsBefore = ck.state.trainMs;
    metrics = readMetrics(metricsFile, step);
    writeFileAtomicSync(metricsFile, metrics.map((m) => JSON.stringify(m) + '\n').join(''));
    log(`resumed from ${resumeDir} at step ${step}/${r.steps}`);
  } else {
    if (peft) loadBaseAndAdapter(model, r.model.init!, peft, r.seed);
    else if (r.model.init !== undefined) loadInitWeights(r.model.init, model);
    else initParams(config, model.layout, (e, values) => model.setParam(e.name, values), r.seed);
    writeFileAtomicSync(metricsFile, '');
  }
  if (step > r.steps) throw new OpenELMError('usage', `the checkpoint is at step ${step}, past recipe.steps (${r.steps})`);
  if (resumeDir && step === r.steps) log(`the run in ${outDir} is already complete (${step} steps)`);
  if (opts.stopAfter !== undefined && opts.stopAfter <= step && step < r.steps) {
    throw new OpenELMError('usage', `--stop-after ${opts.stopAfter}: the run is already at step ${step}`);
  }

  const nParams = parameterCount(config);
  log(`model: ${nParams.toLocaleString('en-US')} parameters, ${config.numLayers} layers, dim ${config.modelDim}, heads ${config.numQueryHeads.join('/')}, ffn ${config.ffnDims.join('/')}`);
  if (peft) log(`adapter: ${describeAdapter(model, nParams, peft)}`);
  log(`compute: ${backend.describe()}`);
  if (r.precision === 'bf16') log(`precision: ${precisionNote(backend)}`);
  log(`batch: ${r.batchSize} × ${r.seqLen} tokens × ${r.gradAccum} accumulation = ${(r.batchSize * r.seqLen * r.gradAccum).toLocaleString('en-US')} tokens per step; ${r.steps} steps; ${r.pipeline.mode} layout`);

  let validRows: Int32Array[] | null = null;
  const evaluate = async (): Promise<number | undefined> => {
    if (!validSpecs.length) return undefined;
    if (!validRows) {
      validRows = await readValidationRows(r, tok, config.vocabSize);
      if (!validRows.length) throw new OpenELMError('data', 'the validation data gives no rows (check recipe.data.valid / valid_fraction and the filters)');
    }
    let sum = 0, n = 0;
    for (let i = 0; i < validRows.length; i += r.batchSize) {
      const rows = validRows.slice(i, i + r.batchSize);
      const b = rowsToBatch(rows, r.seqLen);
      const res = await model.evalLoss(b.inputs, b.targets, rows.length, r.seqLen, { ignoreIndex: PAD, zLoss: r.zLoss });
      sum += res.loss * res.validTokens; n += res.validTokens;
    }
    return n ? sum / n : undefined;
  };

  let lastCheckpoint: string | null = resumeDir;
  const sessionStart = performance.now();
  let sessionTrainMs = 0, sessionSteps = 0;
  const trainMs = () => trainMsBefore + sessionTrainMs;

  const reportInfo = (status: string) => ({
    title: `OpenELM training: ${path.basename(r.file)}`,
    status,
    summary: [
      ['model', `${r.model.preset ?? (r.model.init ? `init from ${r.model.init}` : 'custom config')}: ${nParams.toLocaleString('en-US')} parameters, ${config.numLayers} layers, dim ${config.modelDim}`],
      ['per-layer heads / FFN', `${config.numQueryHeads.join(' ')} / ${config.ffnDims.join(' ')}`],
      ...(peft ? [['adapter', describeAdapter(model, nParams, peft)] as [string, string]] : []),
      ['data', r.data.train.map((s) => `${s.name} (${s.format}, weight ${s.weight})`).join(', ')],
      ['batch', `${r.batchSize} × ${r.seqLen} × ${r.gradAccum} (${r.pipeline.mode})`],
      ['optimizer', `AdamW lr ${r.optimizer.lr}, betas ${r.optimizer.betas.join('/')}, wd ${r.optimizer.weightDecay}; ${r.schedule.type} schedule, warm-up ${r.schedule.warmupSteps}`],
      ['progress', `step ${step} / ${r.steps}, ${tokens.toLocaleString('en-US')} tokens, ${fmtDuration(trainMs())} of training`],
      ['last loss', metrics.length ? metrics[metrics.length - 1].loss.toFixed(4) : '-'],
      ['checkpoint', lastCheckpoint ?? '-'],
    ] as [string, string][],
    notes: loader.stats().map((s) => describeStats(s.name, s.stats)),
  });

  const checkpoint = async (): Promise<string> => {
    const data = loader.getState();
    const state: TrainerState = {
      version: STATE_VERSION, step, tokens, interval, data: data.json, recipe: r.canonical, trainMs: trainMs(), savedAt: new Date().toISOString(),
    };
    const params = await backend.read(model.params);
    const writeModel = peft ? (d: string) => writeAdapterFiles(d, config, model, params, opts.recipe.model.init ?? null) : undefined;
    lastCheckpoint = writeCheckpoint(outDir, { config, layout: model.layout, params, opt: await opt.state(), state, dataTensors: data.tensors, writeModel }, r.keepCheckpoints, opts.hooks);
    writeReport(outDir, metrics, reportInfo(`checkpoint at step ${step} of ${r.steps}`));
    return lastCheckpoint;
  };

  let status: TrainResult['status'] = 'done';
  try {
    while (step < r.steps) {
      const t0 = performance.now();
      const lr = schedule.lr(step);
      model.zeroGrad();
      let lossSum = 0, stepTokens = 0;
      for (let a = 0; a < r.gradAccum; a++) {
        const b = await loader.nextBatch(r.batchSize);
        const dropoutSeed = mixSeed(r.seed, step, a);
        const res = await model.forwardBackward(b.inputs, b.targets, r.batchSize, r.seqLen, { ignoreIndex: PAD, zLoss: r.zLoss, gradScale: 1 / r.gradAccum, dropoutSeed });
        lossSum += res.loss;
        stepTokens += res.validTokens;
      }
      const loss = lossSum / r.gradAccum;
      const gradNorm = Number.isFinite(loss) ? await clipGradNorm(backend, model.grads, r.clipGradNorm) : NaN;
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        const what = !Number.isFinite(loss) ? `the loss became ${loss}` : `the gradient norm became ${gradNorm}`;
        throw new OpenELMError('train', `${what} at step ${step + 1} (lr ${lr.toExponential(2)}); training stopped without saving that step. ` +
          (lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint}` : 'No checkpoint was written yet') +
          '; lower optimizer.lr or raise schedule.warmup_steps and try again');
      }
      await opt.update(model.params, model.grads, lr);
      step++;
      tokens += stepTokens;
      const dt = performance.now() - t0;
      sessionTrainMs += dt; sessionSteps++;
      interval.lossSum += loss; interval.steps++; interval.tokens += stepTokens; interval.ms += dt;

      const last = step === r.steps;
      const evalNow = r.evalEvery > 0 && (step % r.evalEvery === 0 || last);
      if (step === 1 || step % r.logEvery === 0 || last || evalNow) {
        const m: MetricLine = {
          step, loss: interval.lossSum / interval.steps, lr, grad_norm: gradNorm, tokens,
          tokens_per_s: interval.ms > 0 ? Math.round(interval.tokens / (interval.ms / 1000)) : 0,
        };
        if (evalNow) {
          const v = await evaluate();
          if (v !== undefined) m.val_loss = v;
        }
        metrics.push(m);
        fs.appendFileSync(metricsFile, JSON.stringify(m) + '\n');
        interval = { lossSum: 0, steps: 0, tokens: 0, ms: 0 };
        const eta = (sessionTrainMs / sessionSteps) * (r.steps - step);
        log(`step ${step}/${r.steps}  loss ${m.loss.toFixed(4)}${m.val_loss !== undefined ? `  val ${m.val_loss.toFixed(4)}` : ''}  lr ${lr.toExponential(2)}  ` +
          `grad ${gradNorm.toFixed(3)}  ${m.tokens_per_s.toLocaleString('en-US')} tok/s  elapsed ${fmtDuration(performance.now() - sessionStart)}  ETA ${fmtDuration(eta)}`);
      }

      // Let pending signals (Ctrl-C) reach their handlers between steps.
      await new Promise<void>((res) => setImmediate(res));
      const interrupted = opts.signal?.aborted ?? false;
      const stopHere = opts.stopAfter !== undefined && step >= opts.stopAfter && !last;
      if (last || interrupted || stopHere || step % r.checkpointEvery === 0) {
        const dir = await checkpoint();
        log(`checkpoint: step ${step} written to ${dir}`);
      }
      if (interrupted) { status = 'interrupted'; break; }
      if (stopHere) { status = 'stopped'; break; }
    }
  } catch (e) {
    try { writeReport(outDir, metrics, reportInfo(`stopped at step ${step + 1}: ${e instanceof Error ? e.message : String(e)}`)); } catch { /* keep the original error */ }
    throw e;
  } finally {
    await loader.close();
    backend.dispose();
  }

  const dataStats = loader.stats();
  for (const s of dataStats) log(describeStats(s.name, s.stats));
  const finalStatus = status === 'done' ? `finished: ${step} steps` : status === 'interrupted' ? `interrupted after step ${step} of ${r.steps}` : `stopped after step ${step} of ${r.steps}`;
  const reportFile = writeReport(outDir, metrics, reportInfo(finalStatus));
  const vals = metrics.filter((m) => m.val_loss !== undefined);
  return {
    status, step, steps: r.steps, checkpoint: lastCheckpoint,
    firstLoss: metrics[0]?.loss, lastLoss: metrics[metrics.length - 1]?.loss, lastValLoss: vals[vals.length - 1]?.val_loss,
    trainMs: trainMs(), metricsFile, reportFile, config, dataStats,
  };
}
