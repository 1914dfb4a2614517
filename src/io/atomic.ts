// Crash-safe file replacement: write a temp file next to the target, fsync it, then rename it over the
// target. rename() within one directory is atomic on POSIX, so readers see either the old complete
// file or the new complete file, never a half-written one. On any error the temp file is removed and
// an existing target is left untouched.
//
// Two-phase use (stage now, commit later) lets a multi-file write (sharded checkpoints) finish every
// new file before replacing any old one.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { OpenELMError } from '../core/errors.js';

/** `<path>.tmp-<pid>-<rand>`: same directory (so rename stays atomic), unique across processes. */
export function tempPathFor(finalPath: string): string {
  return `${finalPath}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/** A fully written, fsynced temp file waiting to be renamed onto its final path. */
export interface StagedFile {
  readonly finalPath: string;
  readonly tmpPath: string;
  /** Rename onto finalPath (replacing any existing file). */
  commit(): void;
  /** Remove the temp file; never throws. */
  discard(): void;
}

function ioError(action: string, file: string, err: unknown): OpenELMError {
  if (err instanceof OpenELMError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') {
    return new OpenELMError('io', `cannot ${action} ${file}: directory ${path.dirname(file)} does not exist`);
  }
  const msg = e?.message ? e.message : String(err);
  return new OpenELMError('io', `cannot ${action} ${file}: ${msg}`);
}

function removeQuietly(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch {
    // already gone or never created
  }
}

/** fsync the directory so the rename itself survives a power cut; not supported everywhere, so best effort. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows and some filesystems refuse to open/fsync directories.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function makeStaged(finalPath: string, tmpPath: string): StagedFile {
  let done = false;
  return {
    finalPath,
    tmpPath,
    commit() {
      if (done) throw new Error(`staged file ${tmpPath} already committed or discarded`);
      try {
        fs.renameSync(tmpPath, finalPath);
      } catch (err) {
        removeQuietly(tmpPath);
        done = true;
        throw ioError('replace', finalPath, err);
      }
      done = true;
    },
    discard() {
      if (done) return;
      done = true;
      removeQuietly(tmpPath);
    },
  };
}

/** Write a temp file for `finalPath` with `write(fd)`, fsync and close it; the caller commits or discards. */
export function stageFileSync(finalPath: string, write: (fd: number) => void): StagedFile {
  const tmpPath = tempPathFor(finalPath);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmpPath, 'wx', 0o644);
    write(fd);
    fs.fsyncSync(fd);
    const f = fd;
    fd = undefined;
    fs.closeSync(f);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // keep the original error
      }
    }
    removeQuietly(tmpPath);
    throw ioError('write', finalPath, err);
  }
  return makeStaged(finalPath, tmpPath);
}

/** Async twin of stageFileSync (FileHandle based, so a long write does not block the event loop). */
export async function stageFile(finalPath: string, write: (fh: FileHandle) => Promise<void>): Promise<StagedFile> {
  const tmpPath = tempPathFor(finalPath);
  let fh: FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmpPath, 'wx', 0o644);
    await write(fh);
    await fh.sync();
    const h = fh;
    fh = undefined;
    await h.close();
  } catch (err) {
    if (fh !== undefined) {
      try {
        await fh.close();
      } catch {
        // keep the original error
      }
    }
    removeQuietly(tmpPath);
    throw ioError('write', finalPath, err);
  }
  return makeStaged(finalPath, tmpPath);
}

/**
 * Commit several staged files in order, then fsync their directories. `afterCommit` runs after each
 * rename (tests use it to stop a multi-file commit half way, as a crash would).
 */
export function commitAll(files: readonly StagedFile[], afterCommit?: (finalPath: string) => void): void {
  const dirs = new Set<string>();
  try {
    for (const f of files) {
      f.commit();
      dirs.add(path.dirname(f.finalPath));
      afterCommit?.(f.finalPath);
    }
  } catch (err) {
    for (const f of files) f.discard(); // no-op for the ones already committed
    throw err;
  }
  for (const d of dirs) fsyncDir(d);
}

export function writeAtomicSync(finalPath: string, write: (fd: number) => void): void {
  commitAll([stageFileSync(finalPath, write)]);
}

export async function writeAtomic(finalPath: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  commitAll([await stageFile(finalPath, write)]);
}

/** Write all of `buf` at `position`, looping over short writes and keeping each call ≤ 64 MB. */
export function writeAllSync(fd: number, buf: Uint8Array, position: number): void {
  const CHUNK = 64 * 1024 * 1024;
  let off = 0;
  while (off < buf.byteLength) {
    const n = fs.writeSync(fd, buf, off, Math.min(CHUNK, buf.byteLength - off), position + off);
    off += n;
  }
}

export async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  const CHUNK = 64 * 1024 * 1024;
  let off = 0;
  while (off < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, off, Math.min(CHUNK, buf.byteLength - off), position + off);
    off += bytesWritten;
  }
}

/** Atomically replace a small file (JSON, text) with the given contents. */
export function writeFileAtomicSync(finalPath: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeAtomicSync(finalPath, (fd) => writeAllSync(fd, bytes, 0));
}
