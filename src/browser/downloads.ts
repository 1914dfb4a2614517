// Downloads that outlive the page: each file is streamed into the Cache API under its URL while
// its progress is reported, and read back as a Blob (which the browser keeps on disk, so a model is
// not held in memory twice). The next load of the same URL reads the cached copy.

import { OpenELMError } from '../core/errors.js';

/** The Cache API cache that holds downloaded model files. */
export const MODEL_CACHE = 'openelm-models-v1';

export interface FileProgress {
  file: string;
  loaded: number;
  /** Bytes in all, when the server says. */
  total: number | null;
  /** True when the file came from the browser's cache. */
  cached: boolean;
}

interface CacheStorageLike { open(name: string): Promise<Cache>; delete(name: string): Promise<boolean>; }
const cacheStorage = (): CacheStorageLike | null => (globalThis as unknown as { caches?: CacheStorageLike }).caches ?? null;

/** Whether this context can keep downloads (the Cache API needs a secure context: https or localhost). */
export function canKeepDownloads(): boolean { return cacheStorage() !== null; }

export async function openModelCache(): Promise<Cache | null> {
  const cs = cacheStorage();
  if (!cs) return null;
  try { return await cs.open(MODEL_CACHE); } catch { return null; }
}

/** The cached response for url, if any. */
export async function cachedResponse(url: string): Promise<Response | null> {
  const c = await openModelCache();
  return (await c?.match(url)) ?? null;
}

/** Forget every kept model file. */
export async function clearModelCache(): Promise<void> { await cacheStorage()?.delete(MODEL_CACHE); }

/** URLs and sizes of the kept files. */
export async function listModelCache(): Promise<{ url: string; size: number }[]> {
  const c = await openModelCache();
  if (!c) return [];
  const out: { url: string; size: number }[] = [];
  for (const req of await c.keys()) {
    const r = await c.match(req);
    out.push({ url: req.url, size: Number(r?.headers.get('content-length') ?? 0) });
  }
  return out;
}

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
  /** Keep the file in the Cache API (default true where it exists). */
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

/** Download url into the cache (or memory) with progress; the result is the file as a Blob. */
export async function download(url: string, opts: DownloadOptions = {}): Promise<Blob> {
  const file = opts.file ?? decodeURIComponent(new URL(url).pathname.split('/').pop() || url);
  const cache = opts.keep === false ? null : await openModelCache();
  if (cache) {
    const hit = await cache.match(url);
    if (hit) {
      const b = await hit.blob();
      opts.onProgress?.({ file, loaded: b.size, total: b.size, cached: true });
      return b;
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
  if (cache) {
    const headers: Record<string, string> = { 'content-type': res.headers.get('content-type') ?? 'application/octet-stream' };
    if (total !== null) headers['content-length'] = String(total);
    try {
      await cache.put(url, new Response(counted, { headers }));
    } catch (e) {
      if ((e as Error)?.name === 'AbortError' || opts.signal?.aborted) throw opts.signal?.reason ?? e;
      if (isQuotaError(e)) throw new OpenELMError('storage', quotaMessage(file, total ?? loaded, await storageEstimate()));
      throw new OpenELMError('network', `download of ${url} failed after ${fmtBytes(loaded)}: ${(e as Error).message}`);
    }
    const kept = await cache.match(url);
    if (!kept) throw new OpenELMError('storage', `the browser dropped ${file} from its cache right after the download (storage pressure?)`);
    blob = await kept.blob();
  } else {
    try {
      blob = await new Response(counted).blob();
    } catch (e) {
      if ((e as Error)?.name === 'AbortError' || opts.signal?.aborted) throw opts.signal?.reason ?? e;
      throw new OpenELMError('network', `download of ${url} failed after ${fmtBytes(loaded)}: ${(e as Error).message}`);
    }
  }
  if (total !== null && blob.size !== total) {
    await cache?.delete(url);
    throw new OpenELMError('network', `download of ${url} was cut short: ${blob.size} of ${total} bytes`);
  }
  opts.onProgress?.({ file, loaded: blob.size, total: blob.size, cached: false });
  return blob;
}
