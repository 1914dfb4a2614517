// The training loop: gradient accumulation, clipping, the LR schedule and AdamW on a
// TrainableModel, fed by a task (pretrain-task.ts, sft-task.ts, dpo-task.ts), with metrics, a
// report, and checkpoints that let a run stop anywhere (crash, Ctrl-C, --stop-after) and continue
// bit-identically with --resume.
//
// Step t (0-based count of completed optimizer steps):
//   lr = schedule(t); zero grads; the task runs its grad_accum micro-batches, adding gradients
//   (pretraining: gradScale 1/grad_accum, the mean of micro-batch means, as DDP averages ranks);
//   stop on a non-finite loss or gradient norm; clip the global norm; AdamW update.
// Determinism: the data never reads ahead, every random stream is a saved Rng, and the kernels are
// deterministic, so the state in a checkpoint fully determines the rest of the run.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { formatBytes } from '../core/bytes.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { parameterCount, presetHFConfig, resolveConfig, type OpenELMConfig } from '../model/config.js';
import { initParams } from '../model/init.js';
import { openFloatCheckpoint, readModelConfig } from '../io/model-folder.js';
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
import { constantSchedule, cosineSchedule, hfCosineSchedule, type LRSchedule } from './schedule.js';
import { isHubModelId, recipeDifferences, type Recipe } from './recipe.js';
import { PretrainTask } from './pretrain-task.js';
import { SftTask } from './sft-task.js';
import { DpoTask } from './dpo-task.js';
import type { InstructContext } from './instruct-task.js';
import type { TrainTask } from './task.js';
import { customConfigDefaults, presetSize } from './presets.js';
import { writeReport, type MetricLine } from './report.js';
import { TensorBoardWriter } from './tensorboard.js';
import { InLoopEval, checkEvalTasks, describeScores } from './inloop-eval.js';
import {
  STATE_VERSION, cleanStaleTemps, listCheckpoints, loadNewestIntact, readCheckpointInto, writeCheckpoint,
  type CheckpointHooks, type IntervalAccumulator, type LoadedCheckpoint, type TrainerState,
} from './state.js';
import { readJsonFile } from '../io/json.js';
import { resolveModelFolder } from './run-folder.js';

export interface TrainOptions {
  recipe: Recipe;
  /** Continue from out_dir's latest checkpoint (from scratch when there is none yet). */
  resume?: boolean;
  /** Stop after this many completed steps, with a checkpoint, as if interrupted. */
  stopAfter?: number;
  /** The native sgemm (default 'auto': used when built and a BLAS library loads). */
  native?: NativeMode;
  /** Compute backend, over the recipe's `backend` (default 'auto'). */
  backend?: string;
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
  /** What the data gave (one line per source or set). */
  dataNotes: string[];
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
  const amx = backend instanceof WasmBackend && backend.native?.amx === true;
  const where = how === 'dnnl' || how === 'openblas'
    ? `the native bf16 GEMM (${backend.library}${amx ? ', AMX tiles' : ''})`
    : 'bf16-rounded operands through the f32 kernels (no bf16 GEMM here: the same numerics, no speed-up; npm run build:native with libdnnl2 gives one)';
  return `bf16 products with f32 sums on ${where}; f32 master weights, gradients, AdamW state, norms, softmax and loss`;
}

// ------------------------------------------------------------------------------- model setup

/**
 * The recipe with its model (and DPO reference) as model folders: a hub id downloaded into the HF
 * cache, a training run folder replaced by its latest checkpoint.
 */
export async function resolveRecipeModels(r: Recipe, log: (line: string) => void): Promise<Recipe> {
  const out: Recipe = { ...r, model: { ...r.model }, dpo: r.dpo && { ...r.dpo } };
  const init = r.model.init, ref = r.dpo?.reference;
  if ((init !== undefined && isHubModelId(init)) || (ref !== undefined && isHubModelId(ref))) {
    const hub = await import('../hub/index.js');
    const fetch = async (id: string): Promise<string> => {
      log(`model ${id}: from the hub cache (downloading if needed)`);
      try {
        return await hub.ensureModel(id, { onWarning: (m) => log(m) });
      } catch (e) {
        if (e instanceof OpenELMError) throw new OpenELMError(e.code, `${r.file}: ${id} is not a local folder and could not be fetched from the hub: ${e.message}`);
        throw e;
      }
    };
    if (init !== undefined && isHubModelId(init)) out.model.init = await fetch(init);
    if (out.dpo && ref !== undefined && isHubModelId(ref)) out.dpo.reference = await fetch(ref);
  }
  if (out.model.init !== undefined) out.model.init = resolveModelFolder(out.model.init, log);
  if (out.dpo?.reference !== undefined) out.dpo.reference = resolveModelFolder(out.dpo.reference, log);
  return out;
}

export function recipeModelConfig(r: Recipe): OpenELMConfig {
  if (r.model.init !== undefined && isHubModelId(r.model.init)) {
    // Apple's released models need no download to know their geometry.
    if (presetSize(r.model.init)) return resolveConfig(presetHFConfig(r.model.init));
    throw new OpenELMError('recipe', `${r.file}: recipe.model.init ${r.model.init} is downloaded when training starts; its config is not known before`);
  }
  if (r.model.init !== undefined) return readModelConfig(resolveModelFolder(r.model.init));
  const raw = r.model.config !== undefined ? { ...customConfigDefaults(r.seqLen), ...r.model.config } : r.hfConfig!;
  try {
    return resolveConfig(raw);
  } catch (e) {
    if (e instanceof OpenELMError) throw new OpenELMError('recipe', `${r.file}: recipe.model.${r.model.config !== undefined ? 'config' : 'preset'}: ${e.message}`);
    throw e;
  }
}

function loadInitWeights(dir: string, model: TrainableModel): void {
  const ck = openFloatCheckpoint(dir, 'training from it');
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
  if (s.type === 'hf_cosine') return hfCosineSchedule({ maxLr: r.optimizer.lr, warmupSteps: s.warmupSteps, maxSteps: r.steps });
  return cosineSchedule({ maxLr: r.optimizer.lr, minLr: s.minLr, warmupSteps: s.warmupSteps, maxSteps: r.steps, warmupInitLr: s.warmupInitLr });
}

// ------------------------------------------------------------------------------- the task

/**
 * The task a recipe describes, its data listed (pretraining) or read and tokenized (sft, dpo), and
 * the recipe with its run length fixed (sft/dpo `epochs` need the example count).
 */
async function createTask(r: Recipe, tok: Tokenizer, config: OpenELMConfig, log: (line: string) => void,
  backendOpts: { threads?: number; native?: NativeMode }): Promise<{ task: TrainTask; recipe: Recipe }> {
  if (r.task === 'pretrain') return { task: new PretrainTask(r, tok, config.vocabSize, log), recipe: r };
  if (config.vocabSize < tok.vocabSize) {
    throw new OpenELMError('recipe', `${r.file}: the model's vocab_size (${config.vocabSize}) is smaller than the tokenizer's (${tok.vocabSize})`);
  }
  const ctx: InstructContext = {
    recipe: r, tok, config, log,
    async openModel(dir: string) {
      // the reference computes as the policy does (TRL loads ref_model with the policy's dtype and
      // autocast), so a bf16 run's rewards start at 0 whether or not the reference is a copy of it
      const { model, backend } = await createTrainableModel(readModelConfig(dir), { recompute: true, precision: r.precision, ...backendOpts });
      try {
        loadInitWeights(dir, model);
      } catch (e) {
        backend.dispose();
        throw e;
      }
      return { model, close: () => { model.dispose(); backend.dispose(); } };
    },
  };
  const task = r.task === 'sft' ? await SftTask.create(ctx) : await DpoTask.create(ctx);
  return { task, recipe: task.recipe };
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
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const r0 = await resolveRecipeModels(opts.recipe, log);
  const outDir = r0.outDir;

  // Everything that can fail on bad input is checked before the model is built.
  const config = recipeModelConfig(r0);
  if (r0.seqLen > config.maxContextLength) {
    throw new OpenELMError('recipe', r0.task === 'pretrain'
      ? `${r0.file}: recipe.seq_len (${r0.seqLen}) is longer than the model's max_context_length (${config.maxContextLength})`
      : `${r0.file}: recipe.max_length (${r0.maxLength}) needs ${r0.seqLen} positions; the model's max_context_length is ${config.maxContextLength}`);
  }
  // adapter runs (recipe.peft): a frozen base from model.init and a LoRA / DoRA adapter (peft-run.ts)
  const peft = r0.peft ? preparePeftRun(r0, config) : null;
  const tok = opts.tokenizer ?? loadTokenizer(r0.model.init);
  const { task, recipe: r } = await createTask(r0, tok, config, log, { threads: r0.threads, native: opts.native });

  if (r.evalTasks) await checkEvalTasks(r.evalTasks);

  fs.mkdirSync(outDir, { recursive: true });
  cleanStaleTemps(outDir);
  const metricsFile = path.join(outDir, 'metrics.jsonl');
  let resumeDir: string | null = null;
  if (!opts.resume && listCheckpoints(outDir).length) {
    throw new OpenELMError('usage', `${outDir} already holds checkpoints of a run; pass --resume to continue it, or choose another out_dir`);
  }

  const { model, backend } = await createTrainableModel(config, {
    recompute: r.recompute, threads: r.threads, native: opts.native, backend: opts.backend ?? r.backend, precision: r.precision,
    adapter: peft ? { settings: peft.settings, baseDtype: peft.baseDtype } : undefined,
  });
  // AdamW and clipping run on the model's backend.
  const opt = new AdamW(backend, model.layout, { beta1: r.optimizer.betas[0], beta2: r.optimizer.betas[1], eps: r.optimizer.eps, weightDecay: r.optimizer.weightDecay });
  const schedule = makeSchedule(r);

  let step = 0, tokens = 0, trainMsBefore = 0;
  let interval: IntervalAccumulator = { lossSum: 0, steps: 0, tokens: 0, ms: 0 };
  let metrics: MetricLine[] = [];
  let ck: LoadedCheckpoint | null = null;
  // Resuming streams the checkpoint into the model and the optimizer tensor by tensor (no host
  // copy of all parameters or moments); an adapter run keeps its small adapter on the host until
  // the frozen base is loaded, which sets the adapter too.
  const adapterHost = opts.resume && peft ? new Float32Array(model.layout.total) : null;
  if (opts.resume) {
    const found = loadNewestIntact(outDir, (dir) => {
      // The recipe check comes first: a changed recipe is the user's to fix, not a damaged checkpoint.
      const saved = readJsonFile(path.join(dir, 'trainer_state.json'), 'trainer state') as TrainerState;
      const diffs = recipeDifferences(saved.recipe ?? {}, r.canonical);
      if (diffs.length) {
        throw new OpenELMError('usage', `cannot resume: the recipe changed since ${dir} was written (${diffs.join(', ')}); resuming needs the same settings`);
      }
      return readCheckpointInto(dir, model.layout, {
        param: (e, values) => model.setParam(e.name, values),
        moment: (which, offset, values) => opt.writeMoment(which, offset, values),
      }, peft ? (d) => readAdapterFiles(d, config, model, adapterHost!) : undefined);
    }, log);
    if (found) { resumeDir = found.dir; ck = found.value; } else log(`no checkpoint in ${outDir} yet: starting from step 0`);
  }
  if (resumeDir && ck) {
    if (peft) {
      loadBaseAndAdapter(model, r.model.init!, peft, r.seed);
      model.paramChunks.write(adapterHost!);
    }
    opt.setStep(ck.optStep);
    task.setState(ck.state.data, ck.dataTensors);
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
  const chunks = model.paramChunks.chunks.length;
  if (chunks > 1) {
    log(`training state: parameters, gradients and AdamW moments each in ${chunks} chunks (one ${backend.name} tensor holds at most ${formatBytes(4 * backend.maxTensorValues())})`);
  }
  if (r.precision === 'bf16') log(`precision: ${precisionNote(backend)}`);
  log(task.describeBatch());

  const inLoop = r.evalTasks ? new InLoopEval(r.evalTasks, model, tok) : null;
  let tb: TensorBoardWriter | null = null;

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
      ['batch', r.task === 'pretrain' ? `${r.batchSize} × ${r.seqLen} × ${r.gradAccum} (${r.pipeline.mode})`
        : `${r.batchSize} ${r.task === 'dpo' ? 'pairs' : 'examples'} × ${r.gradAccum}, rows of at most ${r.maxLength} tokens (${r.task})`],
      ['optimizer', `AdamW lr ${r.optimizer.lr}, betas ${r.optimizer.betas.join('/')}, wd ${r.optimizer.weightDecay}; ${r.schedule.type} schedule, warm-up ${r.schedule.warmupSteps}`],
      ['progress', `step ${step} / ${r.steps}, ${tokens.toLocaleString('en-US')} tokens, ${fmtDuration(trainMs())} of training`],
      ['last loss', metrics.length ? metrics[metrics.length - 1].loss.toFixed(4) : '-'],
      ['checkpoint', lastCheckpoint ?? '-'],
    ] as [string, string][],
    notes: task.notes(),
  });

  const checkpoint = async (): Promise<string> => {
    const data = task.getState();
    const state: TrainerState = {
      version: STATE_VERSION, step, tokens, interval, data: data.json, recipe: r.canonical, trainMs: trainMs(), savedAt: new Date().toISOString(),
    };
    // parameters and moments are read tensor by tensor while the files are written (an adapter is small: read whole)
    const adapter = peft ? await model.paramChunks.read() : null;
    const writeModel = adapter ? (d: string) => writeAdapterFiles(d, config, model, adapter, opts.recipe.model.init ?? null) : undefined;
    lastCheckpoint = await writeCheckpoint(outDir, {
      config, layout: model.layout, params: (e) => model.readParam(e.name),
      opt: { step: opt.step, m: (o, n) => opt.readMoment('m', o, n), v: (o, n) => opt.readMoment('v', o, n) },
      state, dataTensors: data.tensors, writeModel, modelFiles: task.checkpointFiles?.(),
    }, r.keepCheckpoints, opts.hooks);
    writeReport(outDir, metrics, reportInfo(`checkpoint at step ${step} of ${r.steps}`));
    return lastCheckpoint;
  };

  let status: TrainResult['status'] = 'done';
  try {
    tb = TensorBoardWriter.open(outDir, resumeDir ? step : null);
    if (!resumeDir) await task.prepare?.(model, opts.signal);
    if (opts.signal?.aborted) status = 'interrupted';
    while (status === 'done' && step < r.steps) {
      const t0 = performance.now();
      const lr = schedule.lr(step);
      model.zeroGrad();
      // adapter dropout masks come from the seed, the step and the micro-batch (resume is bit-identical)
      const stepNow = step;
      const res = await task.step(model, { dropoutSeed: (micro) => mixSeed(r.seed, stepNow, micro) });
      const loss = res.loss, stepTokens = res.tokens;
      const gradNorm = Number.isFinite(loss) ? await clipGradNorm(backend, model.gradChunks, r.clipGradNorm) : NaN;
      if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
        const what = !Number.isFinite(loss) ? `the loss became ${loss}` : `the gradient norm became ${gradNorm}`;
        throw new OpenELMError('train', `${what} at step ${step + 1} (lr ${lr.toExponential(2)}); training stopped without saving that step. ` +
          (lastCheckpoint ? `The last good checkpoint is ${lastCheckpoint}` : 'No checkpoint was written yet') +
          '; lower optimizer.lr or raise schedule.warmup_steps and try again');
      }
      await opt.update(model.paramChunks, model.gradChunks, lr);
      step++;
      tokens += stepTokens;
      const dt = performance.now() - t0;
      sessionTrainMs += dt; sessionSteps++;
      interval.lossSum += loss; interval.steps++; interval.tokens += stepTokens; interval.ms += dt;
      if (res.metrics) {
        interval.metrics ??= {};
        for (const [k, v] of Object.entries(res.metrics)) interval.metrics[k] = (interval.metrics[k] ?? 0) + v;
      }

      const last = step === r.steps;
      const evalNow = r.evalEvery > 0 && (step % r.evalEvery === 0 || last);
      const tasksNow = inLoop?.due(step, last) ?? false;
      if (step === 1 || step % r.logEvery === 0 || last || evalNow || tasksNow) {
        const m: MetricLine = {
          step, loss: interval.lossSum / interval.steps, lr, grad_norm: gradNorm, tokens,
          tokens_per_s: interval.ms > 0 ? Math.round(interval.tokens / (interval.ms / 1000)) : 0,
        };
        for (const [k, v] of Object.entries(interval.metrics ?? {})) m[k] = v / interval.steps;
        if (evalNow) {
          const v = await task.evaluate(model);
          for (const [k, x] of Object.entries(v ?? {})) m[`val_${k}`] = x;
        }
        if (tasksNow) m.eval = await inLoop!.run();
        metrics.push(m);
        fs.appendFileSync(metricsFile, JSON.stringify(m) + '\n');
        tb!.writeMetrics(m);
        interval = { lossSum: 0, steps: 0, tokens: 0, ms: 0 };
        const eta = (sessionTrainMs / sessionSteps) * (r.steps - step);
        log(`step ${step}/${r.steps}  loss ${m.loss.toFixed(4)}${m.val_loss !== undefined ? `  val ${m.val_loss.toFixed(4)}` : ''}  lr ${lr.toExponential(2)}  ` +
          `grad ${gradNorm.toFixed(3)}  ${m.tokens_per_s.toLocaleString('en-US')} tok/s  elapsed ${fmtDuration(performance.now() - sessionStart)}  ETA ${fmtDuration(eta)}`);
        if (m.eval) log(`step ${step}/${r.steps}  eval: ${describeScores(m.eval)}`);
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
  } catch (caught) {
    let e = caught;
    // the device failed under the run (out of memory, lost GPU): say where to continue from
    if (e instanceof OpenELMError && (e.code === 'memory' || e.code === 'device')) {
      e = new OpenELMError(e.code, `${e.message}; training stopped at step ${step + 1}: ` +
        (lastCheckpoint ? `the last checkpoint is ${lastCheckpoint} (continue with --resume)` : 'no checkpoint was written yet'));
    }
    try { writeReport(outDir, metrics, reportInfo(`stopped at step ${step + 1}: ${e instanceof Error ? e.message : String(e)}`)); } catch { /* keep the original error */ }
    throw e;
  } finally {
    tb?.close();
    inLoop?.release();
    await task.close();
    backend.dispose();
  }

  const dataNotes = task.notes();
  for (const l of dataNotes) log(l);
  const finalStatus = status === 'done' ? `finished: ${step} steps` : status === 'interrupted' ? `interrupted after step ${step} of ${r.steps}` : `stopped after step ${step} of ${r.steps}`;
  const reportFile = writeReport(outDir, metrics, reportInfo(finalStatus));
  const vals = metrics.filter((m) => m.val_loss !== undefined);
  return {
    status, step, steps: r.steps, checkpoint: lastCheckpoint,
    firstLoss: metrics[0]?.loss, lastLoss: metrics[metrics.length - 1]?.loss, lastValLoss: vals[vals.length - 1]?.val_loss,
    trainMs: trainMs(), metricsFile, reportFile, config, dataNotes,
  };
}
