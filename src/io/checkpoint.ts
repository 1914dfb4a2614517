// A model checkpoint folder: either one `model.safetensors`, or HF-style shards described by
// `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor: shard file}}).
// Also accepts a path to a single .safetensors file, or a folder with MLX's `weights.safetensors`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { OpenELMError } from '../core/errors.js';
import { readJsonFile } from './json.js';
import { commitAll, fsyncDir, stageFile, stageFileSync, writeAll, writeAllSync, type StagedFile } from './atomic.js';
import {
  DTYPE_SIZE,
  SafetensorsFile,
  checkTensorsToWrite,
  shapeNumel,
  stageSafetensors,
  stageSafetensorsSync,
  type TensorInfo,
  type TensorToStream,
  type TensorToWrite,
} from './safetensors.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';
const MLX_FILE = 'weights.safetensors';

export interface CheckpointTensorInfo extends TensorInfo {
  /** The safetensors file holding this tensor. */
  readonly file: string;
}

export class Checkpoint {
  /** What the user passed (folder or file), used in messages. */
  readonly location: string;
  readonly sharded: boolean;
  /** Index `metadata` for sharded checkpoints, else the file's `__metadata__`. */
  readonly metadata: Readonly<Record<string, unknown>>;
  private readonly files: SafetensorsFile[];
  private readonly where: Map<string, SafetensorsFile>;
  private readonly order: string[];

  constructor(
    location: string,
    sharded: boolean,
    metadata: Record<string, unknown>,
    files: SafetensorsFile[],
    where: Map<string, SafetensorsFile>,
  ) {
    this.location = location;
    this.sharded = sharded;
    this.metadata = metadata;
    this.files = files;
    this.where = where;
    this.order = [...where.keys()];
  }

  /** Tensor names (file order for a single file, index order for shards). */
  names(): string[] {
    return this.order.slice();
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  /** Paths of the safetensors files that make up this checkpoint. */
  filePaths(): string[] {
    return this.files.map((f) => f.path);
  }

  info(name: string): CheckpointTensorInfo {
    const f = this.fileOf(name);
    return { ...f.info(name), file: f.path };
  }

  /** Throw "tensor X has shape [a,b], expected [c,d]" unless the shapes match; returns the info. */
  expectShape(name: string, shape: readonly number[]): CheckpointTensorInfo {
    const t = this.info(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new OpenELMError(
        'checkpoint',
        `tensor ${name} has shape [${t.shape.join(',')}], expected [${shape.join(',')}] (in ${t.file})`,
      );
    }
    return t;
  }

  readRaw(name: string, dst?: Uint8Array): Uint8Array {
    return this.fileOf(name).readRaw(name, dst);
  }

  readRawRange(name: string, at: number, len: number, dst?: Uint8Array): Uint8Array {
    return this.fileOf(name).readRawRange(name, at, len, dst);
  }

  readF32(name: string, dst?: Float32Array, dstOffset = 0): Float32Array {
    return this.fileOf(name).readF32(name, dst, dstOffset);
  }

  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array {
    return this.fileOf(name).readF32Range(name, start, count, dst);
  }

  readBF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array {
    return this.fileOf(name).readBF16(name, dst, dstOffset);
  }

  readF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array {
    return this.fileOf(name).readF16(name, dst, dstOffset);
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (f) return f;
    let hint = '';
    const alt = name.startsWith('transformer.') ? name.slice('transformer.'.length) : `transformer.${name}`;
    if (this.where.has(alt)) {
      hint = name.startsWith('transformer.')
        ? " (this checkpoint uses corenet/MLX names without the 'transformer.' prefix)"
        : " (this checkpoint uses HF names with the 'transformer.' prefix)";
    }
    throw new OpenELMError('checkpoint', `tensor ${name} not found in ${this.location}${hint}`);
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Open a checkpoint folder (or a single .safetensors file). Only headers are read here. */
export function openCheckpoint(location: string): Checkpoint {
  let st: fs.Stats;
  try {
    st = fs.statSync(location);
  } catch {
    throw new OpenELMError('checkpoint', `checkpoint ${location} does not exist`);
  }
  if (st.isFile()) return openSingle(location, location);
  if (!st.isDirectory()) throw new OpenELMError('checkpoint', `checkpoint ${location} is not a folder or file`);

  // The index wins when both exist: saveCheckpoint relies on this to stay readable mid-replacement.
  const indexPath = path.join(location, INDEX_FILE);
  if (isFile(indexPath)) return openSharded(location, indexPath);
  for (const name of [SINGLE_FILE, MLX_FILE]) {
    const p = path.join(location, name);
    if (isFile(p)) return openSingle(location, p);
  }
  throw new OpenELMError('checkpoint', `no ${SINGLE_FILE} or ${INDEX_FILE} in ${location}`);
}

function openSingle(location: string, file: string): Checkpoint {
  const f = SafetensorsFile.open(file);
  const where = new Map<string, SafetensorsFile>();
  for (const n of f.names()) where.set(n, f);
  return new Checkpoint(location, false, { ...f.metadata }, [f], where);
}

function openSharded(dir: string, indexPath: string): Checkpoint {
  const bad = (msg: string) => new OpenELMError('checkpoint', `checkpoint index ${indexPath}: ${msg}`);
  const index = readJsonFile(indexPath, 'checkpoint index');
  if (typeof index !== 'object' || index === null || Array.isArray(index)) throw bad('not a JSON object');
  const { metadata, weight_map: weightMap } = index as { metadata?: unknown; weight_map?: unknown };
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw bad('missing "weight_map" object');
  }
  const meta =
    typeof metadata === 'object' && metadata !== null && !Array.isArray(metadata)
      ? (metadata as Record<string, unknown>)
      : {};
  const entries = Object.entries(weightMap as Record<string, unknown>);
  if (entries.length === 0) throw bad('"weight_map" is empty');
  const shards = new Map<string, SafetensorsFile>();
  const where = new Map<string, SafetensorsFile>();
  try {
    for (const [name, shard] of entries) {
      if (typeof shard !== 'string' || shard === '' || path.basename(shard) !== shard || shard === '..') {
        throw bad(`tensor ${name} maps to ${JSON.stringify(shard)}, which is not a file name in the folder`);
      }
      let f = shards.get(shard);
      if (!f) {
        const p = path.join(dir, shard);
        if (!isFile(p)) throw bad(`shard ${shard} (holding tensor ${name}) is missing from ${dir}`);
        f = SafetensorsFile.open(p);
        shards.set(shard, f);
      }
      if (!f.has(name)) throw bad(`maps tensor ${name} to shard ${shard}, but that shard has no such tensor`);
      where.set(name, f);
    }
  } catch (err) {
    for (const f of shards.values()) f.close();
    throw err;
  }
  return new Checkpoint(dir, true, meta, [...shards.values()], where);
}

// ---------------------------------------------------------------- saving

export interface SaveCheckpointOptions {
  /** Split into HF-style shards of at most this many tensor bytes (a bigger tensor gets its own shard). */
  maxShardBytes?: number;
  /** Stored as every file's `__metadata__`; default {format: "pt"}, which transformers requires. */
  metadata?: Record<string, string>;
  /** Called after each file is renamed into place (tests stop a save half way with it). */
  afterCommit?: (file: string) => void;
}

interface SavePlan<T extends TensorToStream> {
  shards: { file: string; tensors: T[] }[];
  index?: string; // JSON text
}

function shardName(i: number, n: number, tag = ''): string {
  const p = (k: number) => String(k).padStart(5, '0');
  return `model-${p(i + 1)}-of-${p(n)}${tag}.safetensors`;
}

/**
 * Give the planned shards names that no file of the checkpoint now in the folder uses, so writing
 * them never touches the old set: the standard names, else the same names tagged "-b", else a
 * random tag. Re-saving into one folder alternates between the two.
 */
function avoidOldNames<T extends TensorToStream>(plan: SavePlan<T>, old: Set<string>): SavePlan<T> {
  if (plan.index === undefined || plan.shards.every((s) => !old.has(s.file))) return plan;
  const n = plan.shards.length;
  let tag = '-b';
  if (plan.shards.some((_, i) => old.has(shardName(i, n, tag)))) tag = `-${randomBytes(4).toString('hex')}`;
  const shards = plan.shards.map((s, i) => ({ file: shardName(i, n, tag), tensors: s.tensors }));
  const index = JSON.parse(plan.index) as { metadata: unknown; weight_map: Record<string, string> };
  for (const s of shards) for (const t of s.tensors) index.weight_map[t.name] = s.file;
  return { shards, index: JSON.stringify(index, null, 2) + '\n' };
}

function planSave<T extends TensorToStream>(tensors: readonly T[], maxShardBytes: number | undefined): SavePlan<T> {
  if (maxShardBytes !== undefined && !(Number.isFinite(maxShardBytes) && maxShardBytes > 0)) {
    throw new OpenELMError('checkpoint', `maxShardBytes must be a positive number, got ${maxShardBytes}`);
  }
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new OpenELMError('checkpoint', `cannot save checkpoint: duplicate tensor name ${t.name}`);
    seen.add(t.name);
  }
  const groups: T[][] = [[]];
  let cur = 0;
  let total = 0;
  for (const t of tensors) {
    const size = DTYPE_SIZE[t.dtype] !== undefined ? shapeNumel(t.shape) * DTYPE_SIZE[t.dtype] : 0;
    total += size;
    const last = groups[groups.length - 1];
    if (maxShardBytes !== undefined && last.length > 0 && cur + size > maxShardBytes) {
      groups.push([t]);
      cur = size;
    } else {
      last.push(t);
      cur += size;
    }
  }
  if (groups.length === 1) return { shards: [{ file: SINGLE_FILE, tensors: groups[0] }] };
  const shards = groups.map((g, i) => ({ file: shardName(i, groups.length), tensors: g }));
  const weightMap: Record<string, string> = {};
  for (const s of shards) for (const t of s.tensors) weightMap[t.name] = s.file;
  const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2) + '\n';
  return { shards, index };
}

/** Files of the checkpoint currently in `dir` (before saving), so stale ones can be removed after. */
function existingCheckpointFiles(dir: string): Set<string> {
  const out = new Set<string>();
  if (isFile(path.join(dir, SINGLE_FILE))) out.add(SINGLE_FILE);
  const indexPath = path.join(dir, INDEX_FILE);
  if (isFile(indexPath)) {
    out.add(INDEX_FILE);
    try {
      const idx = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as { weight_map?: Record<string, unknown> };
      for (const f of Object.values(idx.weight_map ?? {})) {
        if (typeof f === 'string' && f !== '' && path.basename(f) === f && f !== '..') out.add(f);
      }
    } catch {
      // A broken old index: its shards (if any) are left alone rather than guessed at.
    }
  }
  return out;
}

function ensureDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new OpenELMError('checkpoint', `cannot create checkpoint folder ${dir}: ${(err as Error).message}`);
  }
}

/**
 * A save is atomic as a set: at every moment the folder reads as the complete old checkpoint or the
 * complete new one. New shards never reuse a name the old set uses (avoidOldNames), so they can all
 * be renamed into place while the old index still points at the old shards; renaming the new index
 * over the old one is the single step that switches sets. A new single file goes in beside an old
 * index, which openCheckpoint prefers until it is removed. Stale files go last, the old index
 * before its shards.
 */
function commitAndClean(dir: string, staged: StagedFile[], old: Set<string>, afterCommit?: (file: string) => void): string[] {
  commitAll(staged, afterCommit);
  const written = new Set(staged.map((s) => path.basename(s.finalPath)));
  const stale = [...old].filter((f) => !written.has(f));
  // Remove the old index before its shards so it never points at missing files.
  stale.sort((a, b) => (a === INDEX_FILE ? -1 : b === INDEX_FILE ? 1 : 0));
  for (const f of stale) {
    try {
      fs.unlinkSync(path.join(dir, f));
    } catch {
      // already gone
    }
  }
  if (stale.length) fsyncDir(dir);
  return staged.map((s) => s.finalPath);
}

/** What both savers do before writing: the shard plan, checked tensors, the folder, its old files. */
function prepareSave<T extends TensorToStream>(dir: string, tensors: readonly T[], opts: SaveCheckpointOptions) {
  const planned = planSave(tensors, opts.maxShardBytes);
  const metadata = opts.metadata ?? { format: 'pt' };
  for (const s of planned.shards) checkTensorsToWrite(path.join(dir, s.file), s.tensors, metadata);
  ensureDir(dir);
  const old = existingCheckpointFiles(dir);
  return { plan: avoidOldNames(planned, old), metadata, old };
}

/**
 * Save tensors as `dir/model.safetensors`, or as shards + index when maxShardBytes splits them.
 * Every new file is written and fsynced under a temp name first; existing files are replaced only
 * after all of them are complete, and on error all temp files are removed. Returns the written paths.
 */
export async function saveCheckpoint(
  dir: string,
  tensors: readonly TensorToStream[],
  opts: SaveCheckpointOptions = {},
): Promise<string[]> {
  const { plan, metadata, old } = prepareSave(dir, tensors, opts);
  const staged: StagedFile[] = [];
  try {
    for (const s of plan.shards) staged.push(await stageSafetensors(path.join(dir, s.file), s.tensors, metadata));
    if (plan.index !== undefined) {
      const bytes = Buffer.from(plan.index, 'utf8');
      staged.push(await stageFile(path.join(dir, INDEX_FILE), (fh) => writeAll(fh, bytes, 0)));
    }
  } catch (err) {
    for (const s of staged) s.discard();
    throw err;
  }
  return commitAndClean(dir, staged, old, opts.afterCommit);
}

export function saveCheckpointSync(
  dir: string,
  tensors: readonly TensorToWrite[],
  opts: SaveCheckpointOptions = {},
): string[] {
  const { plan, metadata, old } = prepareSave(dir, tensors, opts);
  const staged: StagedFile[] = [];
  try {
    for (const s of plan.shards) staged.push(stageSafetensorsSync(path.join(dir, s.file), s.tensors, metadata));
    if (plan.index !== undefined) {
      const bytes = Buffer.from(plan.index, 'utf8');
      staged.push(stageFileSync(path.join(dir, INDEX_FILE), (fd) => writeAllSync(fd, bytes, 0)));
    }
  } catch (err) {
    for (const s of staged) s.discard();
    throw err;
  }
  return commitAndClean(dir, staged, old, opts.afterCommit);
}
