// One downloader per blob: two processes (or two calls in one process) fetching the same file
// would write the same .incomplete file. A lock file created with O_EXCL holds the owner's pid; a
// lock whose process is gone is stale and taken over. (huggingface_hub's own `<etag>.lock` uses
// fcntl locks and stays on disk, so this lock has a name of its own.)

import * as fs from 'node:fs';

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

const held = new Map<string, Promise<void>>();

export async function withFileLock<T>(lockPath: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  // Same process: queue behind the holder.
  while (held.has(lockPath)) await held.get(lockPath)!.catch(() => undefined);
  let release!: () => void;
  held.set(lockPath, new Promise<void>((r) => { release = r; }));
  try {
    for (;;) {
      signal?.throwIfAborted();
      try {
        const fd = fs.openSync(lockPath, 'wx');
        fs.writeSync(fd, String(process.pid));
        fs.closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let pid = NaN;
        try { pid = Number(fs.readFileSync(lockPath, 'utf8')); } catch { continue; }
        if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) { fs.rmSync(lockPath, { force: true }); continue; }
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    try { return await fn(); } finally { fs.rmSync(lockPath, { force: true }); }
  } finally {
    held.delete(lockPath);
    release();
  }
}
