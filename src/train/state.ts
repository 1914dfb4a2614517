// Training checkpoints. Each is a folder `out_dir/step-00001234/` holding
//   config.json + model.safetensors   an HF model folder (F32), loadable by `openelm generate`
//                                      (adapter runs: adapter_config.json + adapter_model.safetensors,
//                                      a PEFT adapter folder; train/peft-run.ts);
//   optimizer.safetensors              AdamW m and v (flat, F32; the step count in the metadata);
//   data_state.safetensors             the task's data arrays: the loader's buffers (shuffle buffer,
//                                      pack carry) as I32, DPO's reference log-probabilities as F64;
//   trainer_state.json                 step, token count, RNG and data-reader positions, the recipe;
//   manifest.json                      every other file's size and sha256.
// Parameters and moments may be given as readers instead of host arrays: each tensor (each slice
// of m and v) is then read while its bytes are written, so a model too large to copy to the host
// whole (training past one WebAssembly memory) is saved without such a copy; resuming reads them
// back the same way, into a CheckpointSink.
// The folder is written under a temporary name and renamed into place once every file is complete
// and fsynced, then `out_dir/latest` (a one-line text file naming the folder) is replaced
// atomically. A crash or a full disk at any point leaves the previous checkpoint untouched and no
// partial folder under a step name; stale temporary folders are removed at the next start. A
// checkpoint damaged later (a truncated or altered file) fails its manifest check, and resuming
// falls back to the newest intact one.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { OpenELMError } from '../core/errors.js';
import { fsyncDir, writeFileAtomicSync } from '../io/atomic.js';
import { readJsonFile, writeJsonFileAtomic } from '../io/json.js';
import { SafetensorsFile, writeSafetensors, writeSafetensorsSync, type TensorToWrite } from '../io/safetensors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import type { OpenELMConfig } from '../model/config.js';
import type { ParamEntry, ParamLayout } from '../model/layout.js';
import { saveModel, saveModelStreamed } from '../io/model-folder.js';
import type { LoaderState } from './data/loader.js';
import { LATEST_FILE, latestCheckpointOf, latestNamed, stepFolders } from './run-folder.js';

export const STATE_VERSION = 1;
const TMP_PREFIX = '.tmp-step-';
const MANIFEST = 'manifest.json';
const STEP_DIR_RE = /^step-\d{8}$/;

export interface IntervalAccumulator {
  lossSum: number; steps: number; tokens: number; ms: number;
  /** Sums of a task's per-step metrics (DPO's rewards/*, logps/*). */
  metrics?: Record<string, number>;
}

export interface TrainerState {
  version: number;
  /** Completed optimizer steps. */
  step: number;
  /** Loss-bearing target tokens trained on so far. */
  tokens: number;
  /** Sums since the last metrics line (a checkpoint may fall between two log steps). */
  interval: IntervalAccumulator;
  /** The task's position in its data (the pretraining loader's state, or an instruction set's epoch order). */
  data: LoaderState | unknown;
  recipe: Record<string, unknown>;
  /** Wall time spent training (all sessions), for the report. */
  trainMs: number;
  savedAt: string;
}

/** Flat values [offset, offset + n) of a layout-sized vector, read on demand. */
export type FlatReader = (offset: number, n: number) => Promise<Float32Array>;

export interface CheckpointData {
  config: OpenELMConfig;
  layout: ParamLayout;
  /** The flat parameters, or a reader of one tensor's values. */
  params: Float32Array | ((e: ParamEntry) => Promise<Float32Array>);
  /** AdamW's moments (flat, the layout's size) as arrays or readers. */
  opt: { step: number; m: Float32Array | FlatReader; v: Float32Array | FlatReader };
  state: TrainerState;
  dataTensors: Record<string, Int32Array | Float64Array>;
  /** Further files of the model folder (an instruction-tuned model's tokenizer_config.json with its chat template). */
  modelFiles?: Record<string, string>;
  /** Writes the model files into the checkpoint folder instead of saveModel (adapter runs). */
  writeModel?: (dir: string) => void;
}

export interface CheckpointHooks {
  /** Called after each file of the checkpoint is written (tests use it to simulate a full disk). */
  afterFile?: (file: string) => void;
}

export function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

function rmQuiet(p: string): void {
  try { fs.rmSync(p, { recursive: true, force: true }); } catch { /* best effort */ }
}

/** Remove temporary checkpoint folders left by a crash during a write. */
export function cleanStaleTemps(outDir: string): void {
  if (!fs.existsSync(outDir)) return;
  for (const n of fs.readdirSync(outDir)) if (n.startsWith(TMP_PREFIX)) rmQuiet(path.join(outDir, n));
}

/** Complete step folders in out_dir, oldest first. */
export function listCheckpoints(outDir: string): string[] {
  return stepFolders(outDir);
}

/** The folder of the newest checkpoint: the one `latest` names, else the highest complete step folder. */
export function findLatestCheckpoint(outDir: string): string | null {
  return latestCheckpointOf(outDir);
}

// ------------------------------------------------------------------------------- manifest

interface ManifestEntry { bytes: number; sha256: string; }
interface Manifest { version: 1; step: number; files: Record<string, ManifestEntry>; }

function sha256FileSync(file: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 << 20);
  const fd = fs.openSync(file, 'r');
  try {
    for (let n = fs.readSync(fd, buf, 0, buf.length, null); n > 0; n = fs.readSync(fd, buf, 0, buf.length, null)) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Record the size and sha256 of every file in a checkpoint folder being written. */
function writeManifest(dir: string, step: number): void {
  const files: Record<string, ManifestEntry> = {};
  for (const n of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, n);
    if (n === MANIFEST || !fs.statSync(p).isFile()) continue;
    files[n] = { bytes: fs.statSync(p).size, sha256: sha256FileSync(p) };
  }
  const m: Manifest = { version: 1, step, files };
  writeJsonFileAtomic(path.join(dir, MANIFEST), m);
}

/**
 * What is wrong with a checkpoint folder, in a few words, or null when its files match its
 * manifest. A folder written before manifests existed is only checked for completeness here; the
 * loader's own checks (sizes, headers) still apply when it is read.
 */
export function checkpointProblem(dir: string): string | null {
  if (!fs.existsSync(path.join(dir, 'trainer_state.json'))) return 'trainer_state.json is missing';
  const mp = path.join(dir, MANIFEST);
  if (!fs.existsSync(mp)) return null;
  let m: Manifest;
  try {
    m = JSON.parse(fs.readFileSync(mp, 'utf8')) as Manifest;
  } catch {
    return `${MANIFEST} is not valid JSON`;
  }
  if (!m || typeof m.files !== 'object' || m.files === null) return `${MANIFEST} lists no files`;
  for (const [name, e] of Object.entries(m.files)) {
    if (path.basename(name) !== name || !e || typeof e.bytes !== 'number' || typeof e.sha256 !== 'string') return `${MANIFEST} has a malformed entry ${JSON.stringify(name)}`;
    const p = path.join(dir, name);
    let size: number;
    try { size = fs.statSync(p).size; } catch { return `${name} is missing`; }
    if (size !== e.bytes) return `${name} has ${size} bytes, the manifest says ${e.bytes}`;
    if (sha256FileSync(p) !== e.sha256) return `${name} does not match its sha256 in the manifest`;
  }
  return null;
}

const stepOf = (dir: string) => Number(path.basename(dir).slice('step-'.length));

/** Step folders to try when resuming, newest first: the one `latest` names, then every step folder by step. */
function resumeCandidates(outDir: string): string[] {
  let names: string[] = [];
  try { names = fs.readdirSync(outDir).filter((n) => STEP_DIR_RE.test(n)).sort().reverse(); } catch { /* no run yet */ }
  const named = latestNamed(outDir);
  const all = names.map((n) => path.join(outDir, n));
  return named ? [named, ...all.filter((d) => d !== named)] : all;
}

/** Move a damaged checkpoint out of the step-folder namespace (kept for inspection, never loaded again). */
function setAside(dir: string): string {
  let dst = `${dir}.damaged`;
  for (let i = 2; fs.existsSync(dst); i++) dst = `${dir}.damaged-${i}`;
  fs.renameSync(dir, dst);
  return dst;
}

/**
 * Load the newest intact checkpoint of a run with `load` (which reads it into the caller's
 * buffers). A checkpoint whose files fail the manifest check, or whose loading fails with anything
 * but a usage error (those, like a changed recipe, are rethrown), counts as damaged: the next older
 * one is tried, and when one loads, `warn` gets one line naming both steps and the damaged folders
 * are set aside as `<name>.damaged`. Null when the run has no checkpoint; an error listing every
 * checkpoint when none is intact.
 */
export function loadNewestIntact<T>(outDir: string, load: (dir: string) => T, warn: (line: string) => void): { dir: string; value: T } | null {
  const damaged: { dir: string; why: string }[] = [];
  for (const dir of resumeCandidates(outDir)) {
    let why = checkpointProblem(dir);
    let value: T | undefined;
    if (why === null) {
      try {
        value = load(dir);
      } catch (e) {
        if (!(e instanceof OpenELMError) || e.code === 'usage') throw e;
        why = e.message;
      }
    }
    if (why !== null) { damaged.push({ dir, why }); continue; }
    if (damaged.length) {
      const moved = damaged.map((d) => path.basename(setAside(d.dir)));
      const newest = damaged[0];
      warn(`warning: checkpoint ${path.basename(newest.dir)} (step ${stepOf(newest.dir)}) is damaged: ${newest.why}; ` +
        `resuming from step ${stepOf(dir)} (${path.basename(dir)}), the newest intact checkpoint, instead of step ${stepOf(newest.dir)}; ` +
        `the damaged folder${moved.length > 1 ? 's are' : ' is'} kept as ${moved.join(', ')}`);
    }
    return { dir, value: value as T };
  }
  if (damaged.length) {
    throw new OpenELMError('checkpoint', `no intact checkpoint in ${outDir} to resume from: ${damaged.map((d) => `${path.basename(d.dir)}: ${d.why}`).join('; ')}`);
  }
  return null;
}

/** Slices in which the moments are streamed to and from optimizer.safetensors (64 MB of f32). */
const MOMENT_SLICE = 1 << 24;

/** A flat vector of `total` f32 values as streamed safetensors data, read slice by slice. */
function streamedFlat(total: number, read: FlatReader) {
  return {
    byteLength: total * 4,
    async *pieces() { for (let o = 0; o < total; o += MOMENT_SLICE) yield await read(o, Math.min(MOMENT_SLICE, total - o)); },
  };
}

/** Write a checkpoint for state.step; returns its folder. Throws OpenELMError('io') and leaves nothing behind on failure. */
export async function writeCheckpoint(outDir: string, d: CheckpointData, keep: number, hooks: CheckpointHooks = {}): Promise<string> {
  const name = stepDirName(d.state.step);
  const tmp = path.join(outDir, `${TMP_PREFIX}${String(d.state.step).padStart(8, '0')}-${process.pid}-${Date.now().toString(36)}`);
  const after = (f: string) => hooks.afterFile?.(path.join(tmp, f));
  try {
    fs.mkdirSync(outDir, { recursive: true });
    fs.mkdirSync(tmp);
    if (d.writeModel) d.writeModel(tmp);
    else if (d.params instanceof Float32Array) saveModel(tmp, d.config, d.layout, d.params);
    else await saveModelStreamed(tmp, d.config, d.layout, d.params);
    after('model.safetensors');
    for (const [name, text] of Object.entries(d.modelFiles ?? {})) {
      fs.writeFileSync(path.join(tmp, name), text);
      after(name);
    }
    const moment = (x: Float32Array | FlatReader) => (x instanceof Float32Array ? x : streamedFlat(d.layout.total, x));
    const total = (x: Float32Array | FlatReader) => (x instanceof Float32Array ? x.length : d.layout.total);
    await writeSafetensors(path.join(tmp, 'optimizer.safetensors'), [
      { name: 'm', dtype: 'F32', shape: [total(d.opt.m)], data: moment(d.opt.m) },
      { name: 'v', dtype: 'F32', shape: [total(d.opt.v)], data: moment(d.opt.v) },
    ], { format: 'openelm-adamw', step: String(d.opt.step) });
    after('optimizer.safetensors');
    const tensors: TensorToWrite[] = Object.entries(d.dataTensors).map(([n, a]) => ({ name: n, dtype: a instanceof Float64Array ? 'F64' : 'I32', shape: [a.length], data: a }));
    writeSafetensorsSync(path.join(tmp, 'data_state.safetensors'), tensors, { format: 'openelm-data-state' });
    after('data_state.safetensors');
    // Its presence marks a complete checkpoint.
    writeJsonFileAtomic(path.join(tmp, 'trainer_state.json'), d.state);
    after('trainer_state.json');
    writeManifest(tmp, d.state.step);
    after(MANIFEST);
    fsyncDir(tmp);
    const final = path.join(outDir, name);
    if (fs.existsSync(final)) {
      // Same step written again (e.g. interrupted right after a resume): replace it.
      const old = `${tmp}-old`;
      fs.renameSync(final, old);
      rmQuiet(old);
    }
    fs.renameSync(tmp, final);
    fsyncDir(outDir);
  } catch (e) {
    rmQuiet(tmp);
    const prev = findLatestCheckpoint(outDir);
    const msg = e instanceof Error ? e.message : String(e);
    const full = /ENOSPC|no space/i.test(msg) ? ' (the disk is full)' : '';
    throw new OpenELMError('io', `could not write the checkpoint for step ${d.state.step}${full}: ${msg}; ${prev ? `the last good checkpoint ${prev} is unchanged` : 'no earlier checkpoint exists'}`);
  }
  writeFileAtomicSync(path.join(outDir, LATEST_FILE), name + '\n');
  const all = listCheckpoints(outDir);
  for (const n of all.slice(0, Math.max(0, all.length - keep))) if (n !== name) rmQuiet(path.join(outDir, n));
  return path.join(outDir, name);
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  optStep: number;
  dataTensors: Record<string, Int32Array | Float64Array>;
}

/** Where a checkpoint's parameters and moments go as they are read, one tensor or slice at a time. */
export interface CheckpointSink {
  /** Parameter tensor e's values (valid during the call). */
  param(e: ParamEntry, values: Float32Array): void;
  /** Flat values [offset, offset + values.length) of moment m or v (valid during the call). */
  moment(which: 'm' | 'v', offset: number, values: Float32Array): void;
}

/**
 * Read a checkpoint into the given buffers (params, m, v must have the layout's size). `readModel`
 * replaces reading model.safetensors (adapter runs).
 */
export function readCheckpoint(dir: string, layout: ParamLayout, params: Float32Array, m: Float32Array, v: Float32Array,
  readModel?: (dir: string, params: Float32Array) => void): LoadedCheckpoint {
  return readCheckpointInto(dir, layout, {
    param: (e, values) => params.set(values, e.offset),
    moment: (which, offset, values) => (which === 'm' ? m : v).set(values, offset),
  }, readModel ? (d) => readModel(d, params) : undefined);
}

/**
 * Read a checkpoint tensor by tensor (moments slice by slice) into `sink`: no copy of all the
 * parameters or moments is made. `readModel` replaces reading model.safetensors (adapter runs: it
 * keeps the adapter's parameters itself).
 */
export function readCheckpointInto(dir: string, layout: ParamLayout, sink: CheckpointSink, readModel?: (dir: string) => void): LoadedCheckpoint {
  const state = readJsonFile(path.join(dir, 'trainer_state.json'), 'trainer state') as TrainerState;
  if (state.version !== STATE_VERSION) throw new OpenELMError('checkpoint', `${dir}: trainer state version ${state.version} is not supported (expected ${STATE_VERSION})`);
  if (readModel) readModel(dir);
  else {
    const ck = openCheckpoint(dir);
    try {
      for (const e of layout.entries) {
        ck.expectShape(e.name, e.shape);
        sink.param(e, ck.readF32(e.name));
      }
    } finally { ck.close(); }
  }
  const of = SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
  let optStep: number;
  try {
    const total = layout.total;
    const buf = new Float32Array(Math.min(MOMENT_SLICE, total));
    for (const n of ['m', 'v'] as const) {
      const info = of.info(n);
      if (info.shape.length !== 1 || info.shape[0] !== total) throw new OpenELMError('checkpoint', `${dir}: optimizer state ${n} has ${info.shape[0]} values; this model needs ${total}`);
      for (let o = 0; o < total; o += MOMENT_SLICE) {
        const k = Math.min(MOMENT_SLICE, total - o);
        sink.moment(n, o, of.readF32Range(n, o, k, buf.subarray(0, k)));
      }
    }
    optStep = Number(of.metadata.step);
  } finally { of.close(); }
  const df = SafetensorsFile.open(path.join(dir, 'data_state.safetensors'));
  const dataTensors: Record<string, Int32Array | Float64Array> = {};
  try {
    for (const n of df.names()) {
      const raw = df.readRaw(n);
      const a = df.info(n).dtype === 'F64' ? new Float64Array(raw.byteLength / 8) : new Int32Array(raw.byteLength / 4);
      new Uint8Array(a.buffer).set(raw);
      dataTensors[n] = a;
    }
  } finally { df.close(); }
  return { dir, state, optStep, dataTensors };
}
