// Where a model's files come from in a browser: a URL of a model folder (relative URLs resolve
// against the page), a Hugging Face hub id (its resolve/ URLs allow cross-origin reads), or files
// the user picked or dropped. All three answer the same questions: a small file's text, a file's
// size, a file's bytes.
//
// A value that starts with ".", "/" or a URL scheme is a URL; one shaped org/name is a hub id, as
// the command line reads a model argument (hub/cache.ts REPO_ID_RE).

import { OpenELMError } from '../core/errors.js';
import { download, fetchOrExplain, keptFile, type FileProgress } from './downloads.js';

/** A file picked or dropped by the user, with its path inside the dropped folder when known. */
export interface LocalFile { path: string; file: File; }

export type ModelSource = string | readonly File[] | readonly LocalFile[] | FileList;

export interface ModelFilesOptions {
  /** Base for relative URLs (default: the page's or worker's location). */
  baseUrl?: string;
  /** Hub endpoint (default https://huggingface.co; mirrors use the same URL layout). */
  hubEndpoint?: string;
  /** Hub revision (default "main"). */
  revision?: string;
  /** Hub access token, for gated or private models. */
  token?: string;
  /** The model's name in messages and for -Instruct detection (default: the URL or hub id). */
  label?: string;
  /** Keep downloads in the browser's storage, OPFS or the Cache API (default true). */
  keep?: boolean;
  signal?: AbortSignal;
}

export interface FileStat {
  /** Bytes, when known. */
  size: number | null;
  /** Already kept by the browser (no download needed). */
  cached: boolean;
}

export interface ModelFiles {
  /** How the model is named to the user: the URL, the hub id, or the dropped folder. */
  readonly name: string;
  readonly kind: 'url' | 'hub' | 'files';
  /** The text of a small file, or null when the model has no such file. */
  text(file: string): Promise<string | null>;
  /** A file's size, or null when the model has no such file. */
  stat(file: string): Promise<FileStat | null>;
  /** A file's contents (downloaded, and kept when keep is on). */
  blob(file: string, onProgress?: (p: FileProgress) => void): Promise<Blob>;
  /** The URL a file is read from (remote sources only). */
  urlOf?(file: string): string;
}

const REPO_ID_RE = /^[\w.-]+\/[\w.-]+$/;
const URL_LIKE = /^(\.|\/|[a-z][a-z0-9+.-]*:)/i;

/** 'url' or 'hub' for a model string, or a one-line error saying what a model value may be. */
export function classifyModel(value: string): 'url' | 'hub' {
  const v = value.trim();
  if (URL_LIKE.test(v)) return 'url';
  if (REPO_ID_RE.test(v) && !v.includes('..')) return 'hub';
  throw new OpenELMError('usage', `model "${value}" is neither a URL of a model folder (start it with ./, / or https://) nor a hub id (org/name)`);
}

function defaultBase(): string {
  const loc = (globalThis as unknown as { location?: { href: string } }).location;
  return loc?.href ?? 'http://localhost/';
}

/** The files of a model given as a URL, a hub id or picked files. */
export function modelFiles(source: ModelSource, opts: ModelFilesOptions = {}): ModelFiles {
  if (typeof source !== 'string') return new PickedFiles(source);
  if (classifyModel(source) === 'url') {
    let base: URL;
    try { base = new URL(source.trim(), opts.baseUrl ?? defaultBase()); } catch {
      throw new OpenELMError('usage', `model URL "${source}" is not a valid URL`);
    }
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    return new RemoteFolder(opts.label ?? source.trim(), 'url', base.href, opts);
  }
  const endpoint = (opts.hubEndpoint ?? 'https://huggingface.co').replace(/\/+$/, '');
  const rev = opts.revision ?? 'main';
  return new RemoteFolder(opts.label ?? source.trim(), 'hub', `${endpoint}/${source.trim()}/resolve/${encodeURIComponent(rev)}/`, opts);
}

class RemoteFolder implements ModelFiles {
  private readonly headers: Record<string, string>;

  constructor(readonly name: string, readonly kind: 'url' | 'hub', private readonly base: string, private readonly opts: ModelFilesOptions) {
    this.headers = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  }

  urlOf(file: string): string { return new URL(file, this.base).href; }

  private missing(file: string, status: number): OpenELMError {
    if (this.kind === 'hub' && (status === 401 || status === 404)) {
      return new OpenELMError('hub', `hub model ${this.name} was not found (HTTP ${status}: no such model, or it is private or gated and needs a token)`);
    }
    return new OpenELMError('network', `cannot read ${this.urlOf(file)}: HTTP ${status}`);
  }

  async text(file: string): Promise<string | null> {
    const url = this.urlOf(file);
    let res: Response;
    try {
      res = await fetchOrExplain(url, { signal: this.opts.signal, headers: this.headers });
    } catch (e) {
      // offline: a kept copy will do
      const kept = this.opts.keep === false ? null : await keptFile(url);
      if (kept) return kept.text();
      throw e;
    }
    if (res.status === 404 || res.status === 410) return null;
    if (this.kind === 'hub' && res.status === 401) return null;
    if (!res.ok) throw this.missing(file, res.status);
    const text = await res.text();
    // Single-page-app hosts answer every path with their index.html.
    if (/^\s*</.test(text) && /html/i.test(res.headers.get('content-type') ?? '')) return null;
    return text;
  }

  async stat(file: string): Promise<FileStat | null> {
    const url = this.urlOf(file);
    const kept = this.opts.keep === false ? null : await keptFile(url);
    if (kept) return { size: kept.size, cached: true };
    const res = await fetchOrExplain(url, { method: 'HEAD', signal: this.opts.signal, headers: this.headers });
    if (res.status === 404 || res.status === 410 || (this.kind === 'hub' && res.status === 401)) return null;
    if (!res.ok) throw this.missing(file, res.status);
    // Single-page-app hosts answer every path with their index.html.
    if (/html/i.test(res.headers.get('content-type') ?? '')) return null;
    const n = res.headers.get('x-linked-size') ?? res.headers.get('content-length');
    return { size: n !== null && /^\d+$/.test(n) ? Number(n) : null, cached: false };
  }

  blob(file: string, onProgress?: (p: FileProgress) => void): Promise<Blob> {
    return download(this.urlOf(file), { file, keep: this.opts.keep, signal: this.opts.signal, headers: this.headers, onProgress });
  }
}

class PickedFiles implements ModelFiles {
  readonly kind = 'files' as const;
  readonly name: string;
  private readonly byName = new Map<string, File>();

  constructor(list: readonly File[] | readonly LocalFile[] | FileList) {
    const entries: LocalFile[] = Array.from(list as ArrayLike<File | LocalFile>, (f) =>
      f instanceof File ? { path: (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name, file: f } : f);
    if (entries.length === 0) throw new OpenELMError('usage', 'no files were given: pick or drop a model folder (config.json + model.safetensors)');
    // Files of the shallowest folder win (a dropped parent folder may hold several models).
    entries.sort((a, b) => a.path.split('/').length - b.path.split('/').length);
    for (const e of entries) {
      const base = e.path.split('/').pop()!;
      if (!this.byName.has(base)) this.byName.set(base, e.file);
    }
    const first = entries[0].path.split('/');
    this.name = first.length > 1 ? first[first.length - 2] : 'picked files';
  }

  async text(file: string): Promise<string | null> { return (await this.byName.get(file)?.text()) ?? null; }

  async stat(file: string): Promise<FileStat | null> {
    const f = this.byName.get(file);
    return f ? { size: f.size, cached: true } : null;
  }

  async blob(file: string, onProgress?: (p: FileProgress) => void): Promise<Blob> {
    const f = this.byName.get(file);
    if (!f) throw new OpenELMError('model', `${file} is not among the picked files`);
    onProgress?.({ file, loaded: f.size, total: f.size, cached: true });
    return f;
  }
}
