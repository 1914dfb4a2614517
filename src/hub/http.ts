// HTTP against the Hugging Face hub (or any HF_ENDPOINT mirror): file metadata by HEAD, blob
// downloads by GET with manual redirects, resume, size and hash checks against the ETag (sha256 for
// LFS files, the git blob id otherwise; docs/hub-downloads.md), and errors that say what to do (set
// HF_TOKEN for gated/private repos, check the id for 404s).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { OpenELMError } from '../core/errors.js';
import { normalizeEtag } from './cache.js';

export interface HubClient {
  endpoint: string;
  token?: string;
  signal?: AbortSignal;
  userAgent: string;
  /** Attempts per blob before giving up on network errors (each resumes where the last stopped). */
  maxAttempts: number;
  /** Delay before retry n (ms). */
  retryDelayMs: (attempt: number) => number;
}

export interface FileMeta {
  commit?: string;
  etag?: string;
  size?: number;
}

export interface ByteProgress { downloaded: number; total: number | undefined; }

/** Raised for connection-level failures (refused, reset, DNS): the caller may fall back to the cache. */
export class HubNetworkError extends OpenELMError {
  constructor(message: string) { super('hub', message); this.name = 'HubNetworkError'; }
}

/**
 * The hub URL as given (HF_ENDPOINT or an option), checked: an http(s) URL with a host. `source`
 * names where it came from in the message, e.g. "HF_ENDPOINT".
 */
export function checkEndpoint(endpoint: string, source: string): string {
  const hint = /^[\w.-]+(:\d+)?(\/.*)?$/.test(endpoint) ? `; give the scheme too, e.g. https://${endpoint}` : '; e.g. https://huggingface.co';
  let u: URL;
  try { u = new URL(endpoint); } catch {
    throw new OpenELMError('usage', `${source} ${JSON.stringify(endpoint)} is not a URL${hint}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new OpenELMError('usage', `${source} ${JSON.stringify(endpoint)} must be an http:// or https:// URL${hint}`);
  }
  if (!u.hostname) throw new OpenELMError('usage', `${source} ${JSON.stringify(endpoint)} has no host name`);
  if (u.search || u.hash) throw new OpenELMError('usage', `${source} ${JSON.stringify(endpoint)} must not have a query or fragment`);
  return endpoint;
}

export function resolveUrl(c: HubClient, repo: string, revision: string, file: string): string {
  const enc = (s: string) => s.split('/').map(encodeURIComponent).join('/');
  return `${c.endpoint.replace(/\/+$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${enc(file)}`;
}

function headers(c: HubClient, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const h: Record<string, string> = { 'user-agent': c.userAgent, 'accept-encoding': 'identity', ...extra };
  // The token goes only to the hub itself, never to the CDN a file redirects to.
  if (c.token && new URL(url).origin === new URL(c.endpoint).origin) h.authorization = `Bearer ${c.token}`;
  return h;
}

function describeCause(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err.cause?.code ?? err.cause?.message;
  return cause ? `${err.message} (${cause})` : String(err.message ?? e);
}

async function doFetch(c: HubClient, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, redirect: 'manual', signal: c.signal });
  } catch (e) {
    if (c.signal?.aborted) throw c.signal.reason ?? e;
    throw new HubNetworkError(`cannot reach ${new URL(url).origin}: ${describeCause(e)}`);
  }
}

/** One line that tells the user what went wrong and what to do. */
export async function hubHttpError(c: HubClient, res: Response, repo: string, revision: string, file: string): Promise<OpenELMError> {
  const code = res.headers.get('x-error-code') ?? '';
  const hubMsg = res.headers.get('x-error-message');
  await res.body?.cancel().catch(() => undefined);
  const where = `${repo}@${revision}`;
  const page = `${c.endpoint.replace(/\/+$/, '')}/${repo}`;
  const tokenHint = c.token ? 'the HF_TOKEN sent was not accepted for it; check the token has read access' : 'set HF_TOKEN to a Hugging Face access token with read access';
  const s = res.status;
  if (code === 'GatedRepo' || (s === 403 && code !== 'RepoNotFound')) {
    return new OpenELMError('hub', `${repo} is gated or private (HTTP ${s}): accept its terms at ${page} and ${tokenHint}`);
  }
  if (code === 'RepoNotFound' || (s === 401)) {
    return new OpenELMError('hub', `repository ${repo} was not found at ${c.endpoint} (HTTP ${s}); check the id, or if it is private or gated, ${tokenHint}`);
  }
  if (code === 'RevisionNotFound') return new OpenELMError('hub', `revision "${revision}" does not exist in ${repo} (HTTP ${s})`);
  if (code === 'EntryNotFound' || s === 404) {
    return new OpenELMError('hub', `${file} was not found in ${where} (HTTP 404${hubMsg ? `: ${hubMsg}` : ''}); check the model id and revision`);
  }
  return new OpenELMError('hub', `downloading ${file} from ${where} failed: HTTP ${s}${hubMsg ? ` (${hubMsg})` : ''}`);
}

/**
 * Metadata of one file at a revision, or undefined for a 404 (no such file). Like huggingface_hub, a
 * HEAD that follows only relative redirects: the hub answers an LFS file with a redirect to its CDN
 * and puts X-Linked-Etag / X-Linked-Size / X-Repo-Commit on that redirect response itself.
 */
export async function fileMeta(c: HubClient, repo: string, revision: string, file: string): Promise<FileMeta | undefined> {
  let url = resolveUrl(c, repo, revision, file);
  let commit: string | undefined;
  for (let hop = 0; hop < 10; hop++) {
    const res = await doFetch(c, url, { method: 'HEAD', headers: headers(c, url) });
    const h = res.headers;
    commit ??= h.get('x-repo-commit') ?? undefined;
    const linkedEtag = normalizeEtag(h.get('x-linked-etag'));
    if (res.status >= 300 && res.status < 400) {
      const loc = h.get('location');
      if (!loc) throw new OpenELMError('hub', `${url} redirected without a Location header`);
      const next = new URL(loc, url).href;
      const relative = !/^[a-z][a-z0-9+.-]*:\/\//i.test(loc);
      // An absolute redirect carrying the linked metadata is the CDN hop: stop here.
      if (!relative && linkedEtag) {
        const size = Number(h.get('x-linked-size') ?? NaN);
        return { commit, etag: linkedEtag, size: Number.isFinite(size) ? size : undefined };
      }
      url = next;
      continue;
    }
    if (res.status === 404 && (h.get('x-error-code') ?? 'EntryNotFound') === 'EntryNotFound') return undefined;
    if (res.status >= 400) throw await hubHttpError(c, res, repo, revision, file);
    const sizeStr = h.get('x-linked-size') ?? h.get('content-length');
    const size = sizeStr === null ? NaN : Number(sizeStr);
    return { commit, etag: linkedEtag ?? normalizeEtag(h.get('etag')), size: Number.isFinite(size) ? size : undefined };
  }
  throw new OpenELMError('hub', `too many redirects for ${resolveUrl(c, repo, revision, file)}`);
}

/** GET with redirects followed by hand (so the token is dropped when the host changes). */
async function getFollow(c: HubClient, url: string, extra: Record<string, string>): Promise<Response> {
  for (let hop = 0; hop < 10; hop++) {
    const res = await doFetch(c, url, { method: 'GET', headers: headers(c, url, extra) });
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      await res.body?.cancel().catch(() => undefined);
      url = new URL(res.headers.get('location')!, url).href;
      continue;
    }
    return res;
  }
  throw new OpenELMError('hub', `too many redirects for ${url}`);
}

/**
 * The hash a hub ETag stands for: LFS files are named by the sha256 of their content, every other
 * file by its git blob id, sha1("blob <size>\0" + content). An ETag of neither form cannot be checked.
 */
export type EtagKind = 'sha256' | 'git-sha1';

export function etagKind(etag: string): EtagKind | undefined {
  return /^[0-9a-f]{64}$/.test(etag) ? 'sha256' : /^[0-9a-f]{40}$/.test(etag) ? 'git-sha1' : undefined;
}

/** Throw unless the hub's ETag for `file` can verify it (and so name its blob safely). */
export function checkEtag(c: HubClient, repo: string, file: string, etag: string | undefined): string {
  if (!etag) throw new OpenELMError('hub', `${c.endpoint} sent no ETag for ${file} in ${repo}, so the file cannot be verified; is HF_ENDPOINT a Hugging Face hub?`);
  if (!etagKind(etag)) {
    throw new OpenELMError('hub', `${c.endpoint} sent the ETag ${JSON.stringify(etag.slice(0, 80))} for ${file} in ${repo}, which is neither a sha256 nor a git blob hash, so the file cannot be verified; is HF_ENDPOINT a Hugging Face hub?`);
  }
  return etag;
}

/** The file's hash in the form its ETag uses. */
export async function fileHash(file: string, kind: EtagKind): Promise<string> {
  const h = createHash(kind === 'sha256' ? 'sha256' : 'sha1');
  if (kind === 'git-sha1') h.update(`blob ${fs.statSync(file).size}\0`);
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Does the file's content match the ETag it is cached under? */
export async function matchesEtag(file: string, etag: string): Promise<boolean> {
  const kind = etagKind(etag);
  return kind !== undefined && (await fileHash(file, kind)) === etag;
}

function sizeOf(file: string): number {
  try { return fs.statSync(file).size; } catch { return -1; }
}

const sleep = (ms: number, signal?: AbortSignal) => new Promise<void>((resolve, reject) => {
  const t = setTimeout(resolve, ms);
  signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
});

/**
 * Download one file into `dest` (a blob path) through `<dest>.incomplete`. A partial file left by an
 * earlier run or a dropped connection is resumed with a Range request; the result must have the
 * expected size and the hash its ETag names (sha256 for LFS files, the git blob id otherwise) before
 * it is renamed into the cache. A corrupt result is deleted and downloaded once more from scratch
 * before giving up.
 */
export async function downloadBlob(c: HubClient, repo: string, revision: string, file: string, dest: string, meta: FileMeta,
  onProgress?: (p: ByteProgress) => void): Promise<void> {
  const part = `${dest}.incomplete`;
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const url = resolveUrl(c, repo, revision, file);
  const etag = checkEtag(c, repo, file, meta.etag);
  const kind = etagKind(etag)!;
  let redownloaded = false;
  let lastErr: unknown;
  for (let attempt = 1; attempt <= c.maxAttempts; attempt++) {
    if (attempt > 1) await sleep(c.retryDelayMs(attempt - 1), c.signal);
    let have = Math.max(0, sizeOf(part));
    if (meta.size !== undefined && have > meta.size) { fs.rmSync(part, { force: true }); have = 0; }
    if (meta.size === undefined || have < meta.size) {
      let res: Response;
      try {
        res = await getFollow(c, url, have > 0 ? { range: `bytes=${have}-` } : {});
      } catch (e) {
        if (e instanceof HubNetworkError) { lastErr = e; continue; }
        throw e;
      }
      if (res.status === 416) { await res.body?.cancel().catch(() => undefined); fs.rmSync(part, { force: true }); continue; }
      if (res.status >= 500) { await res.body?.cancel().catch(() => undefined); lastErr = new OpenELMError('hub', `downloading ${file}: server error HTTP ${res.status}`); continue; }
      if (res.status !== 200 && res.status !== 206) throw await hubHttpError(c, res, repo, revision, file);
      if (res.status === 206) {
        const m = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
        if (!m || Number(m[1]) !== have) {
          await res.body?.cancel().catch(() => undefined);
          fs.rmSync(part, { force: true });
          continue;
        }
      } else have = 0;
      const total = meta.size;
      const fh = await fs.promises.open(part, have > 0 ? 'a' : 'w');
      try {
        onProgress?.({ downloaded: have, total });
        if (res.body) {
          for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
            await fh.write(chunk);
            have += chunk.length;
            onProgress?.({ downloaded: have, total });
          }
        }
      } catch (e) {
        if (c.signal?.aborted) throw c.signal.reason ?? e;
        // A dropped connection: keep the partial file and resume on the next attempt.
        lastErr = new HubNetworkError(`downloading ${file}: connection lost after ${have} bytes (${describeCause(e)})`);
        continue;
      } finally {
        await fh.close();
      }
    }
    const got = sizeOf(part);
    if (meta.size !== undefined && got < meta.size) {
      lastErr = new HubNetworkError(`downloading ${file}: the server sent ${got} of ${meta.size} bytes`);
      continue;
    }
    const badSize = meta.size !== undefined && got !== meta.size;
    const hash = badSize ? undefined : await fileHash(part, kind);
    if (badSize || hash !== etag) {
      fs.rmSync(part, { force: true });
      const what = badSize ? `${got} bytes instead of ${meta.size}` : `${kind === 'sha256' ? 'sha256' : 'git blob sha1'} ${hash} instead of ${etag}`;
      if (!redownloaded) { redownloaded = true; lastErr = undefined; continue; }
      throw new OpenELMError('hub', `downloading ${file} from ${repo}: the file is corrupt (${what}) even after a fresh download, so it was not cached; if HF_ENDPOINT is a mirror, check that it serves the hub's files, else try again later`);
    }
    fs.renameSync(part, dest);
    return;
  }
  if (lastErr instanceof OpenELMError) throw new OpenELMError('hub', `${lastErr.message}; gave up after ${c.maxAttempts} attempts (run again to resume from ${Math.max(sizeOf(part), 0)} bytes)`);
  throw new OpenELMError('hub', `downloading ${file} from ${repo} failed after ${c.maxAttempts} attempts`);
}
