// The Hugging Face hub cache layout (the one huggingface_hub, transformers and llama.cpp share), so
// models downloaded here are found by Python tools and vice versa:
//
//   $HF_HUB_CACHE (default $HF_HOME/hub, HF_HOME default ~/.cache/huggingface)
//     models--<org>--<name>/
//       blobs/<etag>                  file contents, named by ETag (the sha256 for LFS files)
//       blobs/<etag>.incomplete       a download in progress (resumed with an HTTP Range request)
//       refs/<revision>               the commit hash a branch/tag pointed to when last seen
//       snapshots/<commit>/<file>     relative symlink to ../../blobs/<etag>
//       .no_exist/<commit>/<file>     marker: the file does not exist at that commit

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';

export const REPO_ID_RE = /^[\w.-]+\/[\w.-]+$/;
const COMMIT_RE = /^[0-9a-f]{40}$/;

export function isCommitHash(rev: string): boolean { return COMMIT_RE.test(rev); }

export function checkRepoId(id: string): void {
  if (!REPO_ID_RE.test(id) || id.includes('..') || id.includes('--')) {
    throw new OpenELMError('hub', `"${id}" is not a hub model id (expected org/name, e.g. apple/OpenELM-270M-Instruct)`);
  }
}

export function checkRevision(rev: string): void {
  if (!rev || rev.split('/').some((p) => p === '' || p === '.' || p === '..') || /[\\\0]/.test(rev)) {
    throw new OpenELMError('hub', `invalid revision "${rev}"`);
  }
}

export function checkRepoFile(file: string): void {
  if (!file || path.isAbsolute(file) || file.split('/').some((p) => p === '' || p === '.' || p === '..') || /[\\\0]/.test(file)) {
    throw new OpenELMError('hub', `refusing unsafe file name "${file}" from the hub`);
  }
}

/** The hub cache root, following huggingface_hub's environment variables. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  return path.join(hfHome(env), 'hub');
}

/** $HF_HOME, default ~/.cache/huggingface (honouring $XDG_CACHE_HOME). */
function hfHome(env: NodeJS.ProcessEnv): string {
  return env.HF_HOME ?? path.join(env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface');
}

/**
 * The access token as huggingface_hub finds it: $HF_TOKEN (or the older $HUGGING_FACE_HUB_TOKEN),
 * else the file `huggingface-cli login` writes ($HF_TOKEN_PATH, default $HF_HOME/token).
 */
export function hubToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || '').trim();
  if (fromEnv) return fromEnv;
  try {
    return fs.readFileSync(env.HF_TOKEN_PATH ?? path.join(hfHome(env), 'token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function isOfflineEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env.HF_HUB_OFFLINE ?? '').trim().toUpperCase();
  return v === '1' || v === 'ON' || v === 'YES' || v === 'TRUE';
}

/** ETag header value as the cache names blobs: weak prefix and quotes removed. */
export function normalizeEtag(etag: string | null | undefined): string | undefined {
  if (!etag) return undefined;
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '') || undefined;
}

export class RepoCache {
  readonly root: string;
  constructor(cacheDir: string, readonly repoId: string) {
    this.root = path.join(cacheDir, `models--${repoId.split('/').join('--')}`);
  }

  blob(etag: string): string { return path.join(this.root, 'blobs', etag); }
  snapshotDir(commit: string): string { return path.join(this.root, 'snapshots', commit); }
  snapshotFile(commit: string, file: string): string { return path.join(this.snapshotDir(commit), ...file.split('/')); }
  noExistFile(commit: string, file: string): string { return path.join(this.root, '.no_exist', commit, ...file.split('/')); }

  /** The commit a revision resolves to in the cache, or undefined. */
  commitFor(revision: string): string | undefined {
    if (isCommitHash(revision)) return fs.existsSync(this.snapshotDir(revision)) ? revision : undefined;
    const ref = path.join(this.root, 'refs', ...revision.split('/'));
    if (!fs.existsSync(ref)) return undefined;
    const c = fs.readFileSync(ref, 'utf8').trim();
    return isCommitHash(c) ? c : undefined;
  }

  writeRef(revision: string, commit: string): void {
    if (isCommitHash(revision)) return;
    const ref = path.join(this.root, 'refs', ...revision.split('/'));
    fs.mkdirSync(path.dirname(ref), { recursive: true });
    if (fs.existsSync(ref) && fs.readFileSync(ref, 'utf8').trim() === commit) return;
    const tmp = `${ref}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, commit);
    fs.renameSync(tmp, ref);
  }

  /** Does snapshots/<commit>/<file> resolve to a readable file (a live symlink or a copy)? */
  hasFile(commit: string, file: string): boolean {
    try { return fs.statSync(this.snapshotFile(commit, file)).isFile(); } catch { return false; }
  }

  markMissing(commit: string, file: string): void {
    const f = this.noExistFile(commit, file);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, '');
  }

  isMarkedMissing(commit: string, file: string): boolean { return fs.existsSync(this.noExistFile(commit, file)); }

  /** Point snapshots/<commit>/<file> at blobs/<etag> (a relative symlink; a copy where symlinks are not allowed). */
  link(commit: string, file: string, etag: string): void {
    const dst = this.snapshotFile(commit, file), blob = this.blob(etag);
    fs.mkdirSync(path.dirname(dst), { recursive: true });
    try { fs.rmSync(dst, { force: true }); } catch { /* replaced below */ }
    try {
      fs.symlinkSync(path.relative(path.dirname(dst), blob), dst);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EPERM' && code !== 'EACCES' && code !== 'ENOTSUP') throw e;
      fs.copyFileSync(blob, dst);
    }
  }
}
