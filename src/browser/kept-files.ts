// Where downloaded model files are kept between visits. The Origin Private File System
// (navigator.storage.getDirectory) where the browser has it: each file is streamed to disk under a
// temporary name, moved to its own name once it is complete, and only then recorded (URL and size
// in a small file beside it), so an interrupted download never passes for a kept file. Elsewhere
// the Cache API. Both hand a kept file back as a Blob the browser reads from disk, so a model is
// never held in memory twice.
//
// OPFS files are named by a hash of their URL: `<key>` (the bytes), `<key>.json` (the record),
// `<key>.part` (a download in progress). Writing uses createWritable() (Chromium, Firefox) or, in a
// worker, a sync access handle (Safari); a browser with neither, or without FileSystemHandle.move,
// keeps files in the Cache API instead.

/** Where kept files live: the Origin Private File System, or the Cache API. */
export type KeptStorage = 'opfs' | 'cache';

export interface KeptFile { url: string; size: number; }

export interface KeptStore {
  readonly kind: KeptStorage;
  /** The kept file of `url`, or null. */
  get(url: string): Promise<Blob | null>;
  /**
   * Keep `body` as the file of `url` and hand it back once it is complete. `total` (when known) is
   * the size it must have: a shorter body is an error and nothing is kept.
   */
  put(url: string, body: ReadableStream<Uint8Array>, total: number | null, type: string): Promise<Blob>;
  list(): Promise<KeptFile[]>;
  delete(url: string): Promise<void>;
  clear(): Promise<void>;
}

/** The Cache API cache that holds downloaded model files. */
export const MODEL_CACHE = 'openelm-models-v1';
/** The OPFS folder that holds them. */
export const OPFS_FOLDER = 'openelm-models';

/** A body that ended before the size its server announced. */
export class CutShortError extends Error {
  constructor(readonly got: number, readonly want: number) { super(`${got} of ${want} bytes`); this.name = 'CutShortError'; }
}

// ------------------------------------------------------------------------------------------ OPFS

// The slices of the File System Access API used here, typed locally: the DOM library of the
// TypeScript version in use lacks move() and the async iterators.
interface SyncHandle { write(b: Uint8Array, o: { at: number }): number; flush(): void; close(): void; }
interface FileHandle {
  kind: 'file';
  getFile(): Promise<File>;
  createWritable?(): Promise<WritableStream<Uint8Array>>;
  createSyncAccessHandle?(): Promise<SyncHandle>;
  move?(name: string): Promise<void>;
}
interface DirHandle {
  getFileHandle(name: string, o?: { create?: boolean }): Promise<FileHandle>;
  getDirectoryHandle(name: string, o?: { create?: boolean }): Promise<DirHandle>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

interface StorageGlobals {
  navigator?: { storage?: { getDirectory?: () => Promise<DirHandle> } };
  crypto?: Crypto;
  caches?: CacheStorage;
  FileSystemFileHandle?: { prototype: object };
  FileSystemHandle?: { prototype: object };
  WorkerGlobalScope?: unknown;
}
const g = globalThis as unknown as StorageGlobals;

async function urlKey(url: string): Promise<string> {
  const d = new Uint8Array(await g.crypto!.subtle.digest('SHA-256', new TextEncoder().encode(url)));
  return Array.from(d.subarray(0, 20), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function writeFile(h: FileHandle, body: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  if (h.createWritable) {
    const counted = body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({ transform(c, ctl) { n += c.byteLength; ctl.enqueue(c); } }));
    await counted.pipeTo(await h.createWritable());
    return n;
  }
  const sync = await h.createSyncAccessHandle!();
  try {
    const reader = body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += sync.write(value, { at: n });
    }
    sync.flush();
  } finally {
    sync.close();
  }
  return n;
}

class OpfsStore implements KeptStore {
  readonly kind = 'opfs' as const;
  constructor(private readonly dir: DirHandle) {}

  private async record(key: string): Promise<KeptFile | null> {
    try {
      const r = JSON.parse(await (await (await this.dir.getFileHandle(`${key}.json`)).getFile()).text()) as Partial<KeptFile>;
      return typeof r.url === 'string' && typeof r.size === 'number' ? { url: r.url, size: r.size } : null;
    } catch { return null; }
  }

  private async remove(key: string): Promise<void> {
    // the record first: from then on the bytes are not a kept file, whatever happens next
    for (const name of [`${key}.json`, key, `${key}.part`]) await this.dir.removeEntry(name).catch(() => undefined);
  }

  async get(url: string): Promise<Blob | null> {
    const key = await urlKey(url);
    const r = await this.record(key);
    if (!r || r.url !== url) return null;
    try {
      const f = await (await this.dir.getFileHandle(key)).getFile();
      return f.size === r.size ? f : null;
    } catch { return null; }
  }

  async put(url: string, body: ReadableStream<Uint8Array>, total: number | null): Promise<Blob> {
    const key = await urlKey(url);
    await this.remove(key);
    try {
      const part = await this.dir.getFileHandle(`${key}.part`, { create: true });
      const n = await writeFile(part, body);
      if (total !== null && n !== total) throw new CutShortError(n, total);
      await part.move!(key);
      const rec = await this.dir.getFileHandle(`${key}.json`, { create: true });
      await writeFile(rec, new Blob([JSON.stringify({ url, size: n } satisfies KeptFile)]).stream());
    } catch (e) {
      await this.remove(key);
      throw e;
    }
    return (await this.dir.getFileHandle(key)).getFile();
  }

  async list(): Promise<KeptFile[]> {
    const out: KeptFile[] = [];
    const names: string[] = [];
    for await (const name of this.dir.keys()) names.push(name);
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      const r = await this.record(name.slice(0, -5));
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.url.localeCompare(b.url));
  }

  async delete(url: string): Promise<void> { await this.remove(await urlKey(url)); }

  async clear(): Promise<void> {
    const names: string[] = [];
    for await (const name of this.dir.keys()) names.push(name);
    for (const name of names) await this.dir.removeEntry(name).catch(() => undefined);
  }
}

/** Whether this context can write OPFS files (createWritable, or a sync access handle in a worker) and move them. */
function opfsWritable(): boolean {
  const fh = g.FileSystemFileHandle?.prototype, h = g.FileSystemHandle?.prototype ?? {};
  if (!fh || !g.crypto?.subtle) return false;
  // Chromium defines move() on FileSystemFileHandle, the spec on FileSystemHandle
  return ('createWritable' in fh || ('createSyncAccessHandle' in fh && g.WorkerGlobalScope !== undefined)) && ('move' in fh || 'move' in h);
}

// ------------------------------------------------------------------------------------- Cache API

class CacheStore implements KeptStore {
  readonly kind = 'cache' as const;
  constructor(private readonly cs: CacheStorage) {}
  private open(): Promise<Cache> { return this.cs.open(MODEL_CACHE); }

  async get(url: string): Promise<Blob | null> {
    const hit = await (await this.open()).match(url);
    return hit ? hit.blob() : null;
  }

  async put(url: string, body: ReadableStream<Uint8Array>, total: number | null, type: string): Promise<Blob> {
    const c = await this.open();
    const headers: Record<string, string> = { 'content-type': type };
    if (total !== null) headers['content-length'] = String(total);
    await c.put(url, new Response(body, { headers }));
    const kept = await c.match(url);
    if (!kept) throw new Error('the browser dropped the file from its cache right after the download (storage pressure?)');
    const b = await kept.blob();
    if (total !== null && b.size !== total) {
      await c.delete(url);
      throw new CutShortError(b.size, total);
    }
    return b;
  }

  async list(): Promise<KeptFile[]> {
    const c = await this.open();
    const out: KeptFile[] = [];
    for (const req of await c.keys()) {
      const r = await c.match(req);
      out.push({ url: req.url, size: Number(r?.headers.get('content-length') ?? 0) });
    }
    return out;
  }

  async delete(url: string): Promise<void> { await (await this.open()).delete(url); }
  async clear(): Promise<void> { await this.cs.delete(MODEL_CACHE); }
}

// ------------------------------------------------------------------------------------------------

let store: Promise<KeptStore | null> | undefined;

/** The store this context keeps downloads in (OPFS where it can write files, else the Cache API), or null. */
export function keptStore(): Promise<KeptStore | null> {
  store ??= (async (): Promise<KeptStore | null> => {
    const getDirectory = g.navigator?.storage?.getDirectory;
    if (getDirectory && opfsWritable()) {
      try {
        const root = await getDirectory.call(g.navigator!.storage);
        return new OpfsStore(await root.getDirectoryHandle(OPFS_FOLDER, { create: true }));
      } catch { /* OPFS refused (a private window in some browsers): the Cache API then */ }
    }
    if (g.caches) {
      try { await g.caches.open(MODEL_CACHE); return new CacheStore(g.caches); } catch { /* no usable cache */ }
    }
    return null;
  })();
  return store;
}
