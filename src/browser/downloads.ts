// Downloads that outlive the page: each file is streamed into the browser's storage (kept-files.ts:
// the Origin Private File System, or the Cache API) while its progress is reported, and read back as
// a Blob (which the browser keeps on disk, so a model is not held in memory twice). The next load of
// the same URL reads the kept copy without the network.

import { OpenELMError } from '../core/errors.js';
import { CutShortError, keptStore, type KeptFile, type KeptStorage } from './kept-files.js';

export { MODEL_CACHE, OPFS_FOLDER, type KeptFile, type KeptStorage } from './kept-files.js';

export interface FileProgress {
  file: string;
  loaded: number;
  /** Bytes in all, when the server says. */
  total: number | null;
  /** True when the file came from the browser's storage. */
  cached: boolean;
}

/** Where this context keeps downloads ('opfs' or 'cache'), or null when it cannot (not a secure context). */
export async function keptStorage(): Promise<KeptStorage | null> { return (await keptStore())?.kind ?? null; }

/** Whether this context can keep downloads (OPFS and the Cache API need a secure context: https or localhost). */
export async function canKeepDownloads(): Promise<boolean> { return (await keptStore()) !== null; }

/** The kept copy of url, if any. */
export async function keptFile(url: string): Promise<Blob | null> {
  const s = await keptStore();
  try { return (await s?.get(url)) ?? null; } catch { return null; }
}

/** Forget every kept model file. */
export async function clearModelCache(): Promise<void> { await (await keptStore())?.clear(); }

/** Forget the kept files of these URLs. */
export async function deleteKept(urls: readonly string[]): Promise<void> {
  const s = await keptStore();
  for (const u of urls) await s?.delete(u);
}

/** URLs and sizes of the kept files. */
export async function listModelCache(): Promise<KeptFile[]> { return (await (await keptStore())?.list()) ?? []; }

export function fmtBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** fetch() with the failures a user can act on turned into one-line errors. */
export async function fetchOrExplain(url: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw e;
    throw new OpenELMError('network', `cannot fetch ${url}: the server is unreachable or does not allow cross-origin requests (CORS)`);
  }
}

export interface DownloadOptions {
  /** Name shown in progress and messages (default: the URL's last segment). */
  file?: string;
  /** Keep the file in the browser's storage (default true where it can). */
  keep?: boolean;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  onProgress?: (p: FileProgress) => void;
}

function isQuotaError(e: unknown): boolean {
  const n = (e as { name?: string })?.name;
  return n === 'QuotaExceededError' || /quota/i.test(String((e as Error)?.message ?? ''));
}

/** How much origin storage is left, when the browser says (navigator.storage.estimate). */
export async function storageEstimate(): Promise<{ usage: number; quota: number } | null> {
  const st = (globalThis as unknown as { navigator?: { storage?: { estimate?: () => Promise<{ usage?: number; quota?: number }> } } }).navigator?.storage;
  if (!st?.estimate) return null;
  try {
    const e = await st.estimate();
    return e.quota === undefined ? null : { usage: e.usage ?? 0, quota: e.quota };
  } catch { return null; }
}

export function quotaMessage(what: string, need: number, est: { usage: number; quota: number } | null): string {
  const room = est ? `; this site may keep ${fmtBytes(est.quota)} and already uses ${fmtBytes(est.usage)}` : '';
  return `storage quota exceeded: keeping ${what} needs ${fmtBytes(need)}${room}. Free space (delete kept models, or this site's data), or load without keeping the download`;
}

/** Download url into the browser's storage (or memory) with progress; the result is the file as a Blob. */
export async function download(url: string, opts: DownloadOptions = {}): Promise<Blob> {
  const file = opts.file ?? decodeURIComponent(new URL(url).pathname.split('/').pop() || url);
  const store = opts.keep === false ? null : await keptStore();
  if (store) {
    const hit = await store.get(url).catch(() => null);
    if (hit) {
      opts.onProgress?.({ file, loaded: hit.size, total: hit.size, cached: true });
      return hit;
    }
  }
  const res = await fetchOrExplain(url, { signal: opts.signal, headers: opts.headers });
  if (!res.ok || !res.body) throw new OpenELMError('network', `cannot download ${url}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  const lenHeader = res.headers.get('content-length');
  const total = lenHeader !== null && /^\d+$/.test(lenHeader) && !res.headers.get('content-encoding') ? Number(lenHeader) : null;
  let loaded = 0, last = 0;
  const counted = res.body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, ctl) {
      loaded += chunk.byteLength;
      const now = Date.now();
      if (now - last > 100) { last = now; opts.onProgress?.({ file, loaded, total, cached: false }); }
      ctl.enqueue(chunk);
    },
  }));
  let blob: Blob;
  try {
    blob = store ? await store.put(url, counted, total, res.headers.get('content-type') ?? 'application/octet-stream') : await new Response(counted).blob();
  } catch (e) {
    if ((e as Error)?.name === 'AbortError' || opts.signal?.aborted) throw opts.signal?.reason ?? e;
    if (e instanceof CutShortError) throw new OpenELMError('network', `download of ${url} was cut short: ${e.got} of ${e.want} bytes`);
    if (isQuotaError(e)) throw new OpenELMError('storage', quotaMessage(file, total ?? loaded, await storageEstimate()));
    throw new OpenELMError('network', `download of ${url} failed after ${fmtBytes(loaded)}: ${(e as Error).message}`);
  }
  if (total !== null && blob.size !== total) throw new OpenELMError('network', `download of ${url} was cut short: ${blob.size} of ${total} bytes`);
  opts.onProgress?.({ file, loaded: blob.size, total: blob.size, cached: false });
  return blob;
}
