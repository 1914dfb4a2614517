// Training checkpoints. Each is a folder `out_dir/step-00001234/` holding
//   config.json + model.safetensors   an HF model folder (F32), loadable by `openelm generate`
//                                      (adapter runs: adapter_config.json + adapter_model.safetensors,
//                                      a PEFT adapter folder; train/peft-run.ts);
//   optimizer.safetensors              AdamW m and v (flat, F32; the step count in the metadata);
//   data_state.safetensors             the data loader's buffers (shuffle buffer, pack carry), I32;
//   trainer_state.json                 step, token count, RNG and data-reader positions, the recipe.
// The folder is written under a temporary name and renamed into place once every file is complete
// and fsynced, then `out_dir/latest` (a one-line text file naming the folder) is replaced
// atomically. A crash or a full disk at any point leaves the previous checkpoint untouched and no
// partial folder under a step name; stale temporary folders are removed at the next start.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { fsyncDir, writeFileAtomicSync } from '../io/atomic.js';
import { readJsonFile, writeJsonFileAtomic } from '../io/json.js';
import { SafetensorsFile, writeSafetensorsSync, type TensorToWrite } from '../io/safetensors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import type { OpenELMConfig } from '../model/config.js';
import type { ParamLayout } from '../model/layout.js';
import { saveModel } from '../io/model-folder.js';
import type { LoaderState } from './data/loader.js';

export const STATE_VERSION = 1;
const LATEST = 'latest';
const TMP_PREFIX = '.tmp-step-';

export interface IntervalAccumulator { lossSum: number; steps: number; tokens: number; ms: number; }

export interface TrainerState {
  version: number;
  /** Completed optimizer steps. */
  step: number;
  /** Loss-bearing target tokens trained on so far. */
  tokens: number;
  /** Sums since the last metrics line (a checkpoint may fall between two log steps). */
  interval: IntervalAccumulator;
  data: LoaderState;
  recipe: Record<string, unknown>;
  /** Wall time spent training (all sessions), for the report. */
  trainMs: number;
  savedAt: string;
}

export interface CheckpointData {
  config: OpenELMConfig;
  layout: ParamLayout;
  params: Float32Array;
  opt: { step: number; m: Float32Array; v: Float32Array };
  state: TrainerState;
  dataTensors: Record<string, Int32Array>;
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
  if (!fs.existsSync(outDir)) return [];
  return fs.readdirSync(outDir).filter((n) => /^step-\d{8}$/.test(n) && fs.existsSync(path.join(outDir, n, 'trainer_state.json'))).sort();
}

/** The folder of the newest checkpoint: the one `latest` names, else the highest complete step folder. */
export function findLatestCheckpoint(outDir: string): string | null {
  const lp = path.join(outDir, LATEST);
  if (fs.existsSync(lp)) {
    const name = fs.readFileSync(lp, 'utf8').trim();
    if (/^step-\d{8}$/.test(name) && fs.existsSync(path.join(outDir, name, 'trainer_state.json'))) return path.join(outDir, name);
  }
  const all = listCheckpoints(outDir);
  return all.length ? path.join(outDir, all[all.length - 1]) : null;
}

/** Write a checkpoint for state.step; returns its folder. Throws OpenELMError('io') and leaves nothing behind on failure. */
export function writeCheckpoint(outDir: string, d: CheckpointData, keep: number, hooks: CheckpointHooks = {}): string {
  const name = stepDirName(d.state.step);
  const tmp = path.join(outDir, `${TMP_PREFIX}${String(d.state.step).padStart(8, '0')}-${process.pid}-${Date.now().toString(36)}`);
  const after = (f: string) => hooks.afterFile?.(path.join(tmp, f));
  try {
    fs.mkdirSync(outDir, { recursive: true });
    fs.mkdirSync(tmp);
    if (d.writeModel) d.writeModel(tmp); else saveModel(tmp, d.config, d.layout, d.params);
    after('model.safetensors');
    writeSafetensorsSync(path.join(tmp, 'optimizer.safetensors'), [
      { name: 'm', dtype: 'F32', shape: [d.opt.m.length], data: d.opt.m },
      { name: 'v', dtype: 'F32', shape: [d.opt.v.length], data: d.opt.v },
    ], { format: 'openelm-adamw', step: String(d.opt.step) });
    after('optimizer.safetensors');
    const tensors: TensorToWrite[] = Object.entries(d.dataTensors).map(([n, a]) => ({ name: n, dtype: 'I32', shape: [a.length], data: a }));
    writeSafetensorsSync(path.join(tmp, 'data_state.safetensors'), tensors, { format: 'openelm-data-state' });
    after('data_state.safetensors');
    // Written last: its presence marks a complete checkpoint.
    writeJsonFileAtomic(path.join(tmp, 'trainer_state.json'), d.state);
    after('trainer_state.json');
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
  writeFileAtomicSync(path.join(outDir, LATEST), name + '\n');
  const all = listCheckpoints(outDir);
  for (const n of all.slice(0, Math.max(0, all.length - keep))) if (n !== name) rmQuiet(path.join(outDir, n));
  return path.join(outDir, name);
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainerState;
  optStep: number;
  dataTensors: Record<string, Int32Array>;
}

/**
 * Read a checkpoint into the given buffers (params, m, v must have the layout's size). `readModel`
 * replaces reading model.safetensors (adapter runs).
 */
export function readCheckpoint(dir: string, layout: ParamLayout, params: Float32Array, m: Float32Array, v: Float32Array,
  readModel?: (dir: string, params: Float32Array) => void): LoadedCheckpoint {
  const state = readJsonFile(path.join(dir, 'trainer_state.json'), 'trainer state') as TrainerState;
  if (state.version !== STATE_VERSION) throw new OpenELMError('checkpoint', `${dir}: trainer state version ${state.version} is not supported (expected ${STATE_VERSION})`);
  if (readModel) readModel(dir, params);
  else {
    const ck = openCheckpoint(dir);
    try {
      for (const e of layout.entries) {
        ck.expectShape(e.name, e.shape);
        ck.readF32(e.name, params, e.offset);
      }
    } finally { ck.close(); }
  }
  const of = SafetensorsFile.open(path.join(dir, 'optimizer.safetensors'));
  let optStep: number;
  try {
    for (const [n, dst] of [['m', m], ['v', v]] as const) {
      const info = of.info(n);
      if (info.shape[0] !== dst.length) throw new OpenELMError('checkpoint', `${dir}: optimizer state ${n} has ${info.shape[0]} values; this model needs ${dst.length}`);
      of.readF32(n, dst);
    }
    optStep = Number(of.metadata.step);
  } finally { of.close(); }
  const df = SafetensorsFile.open(path.join(dir, 'data_state.safetensors'));
  const dataTensors: Record<string, Int32Array> = {};
  try {
    for (const n of df.names()) {
      const raw = df.readRaw(n);
      const a = new Int32Array(raw.byteLength / 4);
      new Uint8Array(a.buffer).set(raw);
      dataTensors[n] = a;
    }
  } finally { df.close(); }
  return { dir, state, optStep, dataTensors };
}
