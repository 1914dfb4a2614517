// Models from the Hugging Face hub: `ensureModel("apple/OpenELM-270M-Instruct")` returns a local
// snapshot folder (config.json + model.safetensors or index + shards), downloading what the cache
// lacks. OpenELM repos ship no tokenizer; the bundled Llama-2 one is used unless the repo has its
// own tokenizer.model.
//
// Environment (as huggingface_hub reads it): HF_ENDPOINT (default https://huggingface.co),
// HF_HUB_CACHE / HF_HOME (cache location), HF_TOKEN or the saved login token $HF_HOME/token
// (gated or private repos), HF_HUB_OFFLINE=1
// (never touch the network; use the cache or fail with a clear message).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { readJsonFile } from '../io/json.js';
import { RepoCache, checkRepoFile, checkRepoId, checkRevision, hubCacheDir, hubToken, isCommitHash, isOfflineEnv } from './cache.js';
import { withFileLock } from './lock.js';
import { HubNetworkError, checkEndpoint, checkEtag, downloadBlob, fileMeta, matchesEtag, type FileMeta, type HubClient } from './http.js';
import { VERSION } from '../core/version.js';

export { hubCacheDir, hubToken, isOfflineEnv, REPO_ID_RE } from './cache.js';
export { HubNetworkError } from './http.js';

export interface DownloadProgress {
  repo: string;
  file: string;
  /** Bytes of this file on disk so far (a resumed download starts above 0). */
  downloaded: number;
  /** Expected size in bytes, when the hub said. */
  total: number | undefined;
  /** true on the last event of a file. */
  done: boolean;
}

export interface EnsureModelOptions {
  /** Branch, tag or commit (default "main"). */
  revision?: string;
  /** Cache root (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** Hub URL (default $HF_ENDPOINT, else https://huggingface.co). */
  endpoint?: string;
  /** Access token (default $HF_TOKEN); sent as "Authorization: Bearer", only to the endpoint's host. */
  token?: string;
  /** Use only the cache (default: $HF_HUB_OFFLINE is 1/true/yes/on). */
  offline?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** Called with one line when the hub cannot be reached and a cached copy is used instead. */
  onWarning?: (message: string) => void;
  /** Network attempts per file (default 5); each resumes the partial file. */
  maxAttempts?: number;
  /**
   * Ask the hub about every file again and check each cached blob against its ETag, downloading
   * the ones that are missing or corrupt (repairs a damaged cache). Default false: a complete cached
   * snapshot is trusted.
   */
  force?: boolean;
}

const CONFIG = 'config.json';
const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
/** Fetched when present; OpenELM repos have none of these, fine-tunes may. */
const OPTIONAL = ['generation_config.json', 'tokenizer.model', 'tokenizer_config.json'];

function shardsOf(indexFile: string): string[] {
  const j = readJsonFile(indexFile, 'checkpoint index') as { weight_map?: Record<string, unknown> };
  if (!j || typeof j !== 'object' || !j.weight_map || typeof j.weight_map !== 'object') {
    throw new OpenELMError('hub', `${indexFile}: expected a "weight_map" object`);
  }
  const files = [...new Set(Object.values(j.weight_map))];
  for (const f of files) {
    if (typeof f !== 'string') throw new OpenELMError('hub', `${indexFile}: weight_map values must be file names`);
    checkRepoFile(f);
  }
  return files as string[];
}

/** The snapshot folder of a complete cached copy of `revision`, or undefined. */
export function cachedModel(id: string, opts: Pick<EnsureModelOptions, 'revision' | 'cacheDir'> = {}): string | undefined {
  checkRepoId(id);
  const cache = new RepoCache(opts.cacheDir ?? hubCacheDir(), id);
  const commit = cache.commitFor(opts.revision ?? 'main');
  if (!commit || !cache.hasFile(commit, CONFIG)) return undefined;
  if (cache.hasFile(commit, SINGLE)) return cache.snapshotDir(commit);
  if (!cache.hasFile(commit, INDEX)) return undefined;
  try {
    return shardsOf(cache.snapshotFile(commit, INDEX)).every((f) => cache.hasFile(commit, f)) ? cache.snapshotDir(commit) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A local folder holding the hub model `id` (org/name), downloaded into the shared HF cache when
 * missing. Returns the snapshot folder (…/models--org--name/snapshots/<commit>).
 */
export async function ensureModel(id: string, opts: EnsureModelOptions = {}): Promise<string> {
  checkRepoId(id);
  const revision = opts.revision ?? 'main';
  checkRevision(revision);
  const cacheDir = opts.cacheDir ?? hubCacheDir();
  if (opts.offline ?? isOfflineEnv()) {
    const snap = cachedModel(id, { revision, cacheDir });
    if (snap) return snap;
    throw new OpenELMError('hub', `offline mode (HF_HUB_OFFLINE) is on and ${id}@${revision} is not in the cache ${cacheDir}; run "openelm download ${id}" with network access first, or unset HF_HUB_OFFLINE`);
  }
  const endpoint = opts.endpoint !== undefined ? checkEndpoint(opts.endpoint, 'the hub endpoint')
    : process.env.HF_ENDPOINT ? checkEndpoint(process.env.HF_ENDPOINT, 'HF_ENDPOINT') : 'https://huggingface.co';
  const client: HubClient = {
    endpoint,
    token: opts.token ?? hubToken(),
    signal: opts.signal,
    userAgent: `openelm/${VERSION}; node/${process.versions.node}`,
    maxAttempts: opts.maxAttempts ?? 5,
    retryDelayMs: (n) => Math.min(4000, 250 * 2 ** (n - 1)),
  };
  try {
    return await download(client, id, revision, cacheDir, { onProgress: opts.onProgress, onWarning: opts.onWarning, force: opts.force ?? false });
  } catch (e) {
    if (!(e instanceof HubNetworkError)) throw e;
    const snap = cachedModel(id, { revision, cacheDir });
    if (snap) {
      opts.onWarning?.(`${e.message}; using the cached copy ${snap}`);
      return snap;
    }
    throw new OpenELMError('hub', `${e.message}; ${id} is not in the cache ${cacheDir} either (check the network or HF_ENDPOINT)`);
  }
}

interface DownloadOptions {
  onProgress?: (p: DownloadProgress) => void;
  onWarning?: (message: string) => void;
  force: boolean;
}

async function download(c: HubClient, id: string, revision: string, cacheDir: string, o: DownloadOptions): Promise<string> {
  const cache = new RepoCache(cacheDir, id);
  const { onProgress, force } = o;
  // A known commit whose snapshot is complete needs no network at all.
  if (isCommitHash(revision) && !force) {
    const snap = cachedModel(id, { revision, cacheDir });
    if (snap) return snap;
  }
  const cfgMeta = await fileMeta(c, id, revision, CONFIG);
  if (!cfgMeta) throw new OpenELMError('hub', `${id}@${revision} has no ${CONFIG}; is it an OpenELM model repository?`);
  const commit = cfgMeta.commit ?? (isCommitHash(revision) ? revision : undefined);
  if (!commit) throw new OpenELMError('hub', `${c.endpoint} did not send X-Repo-Commit for ${id}; is HF_ENDPOINT a Hugging Face hub?`);

  const ensure = async (file: string, known?: FileMeta): Promise<boolean> => {
    checkRepoFile(file);
    if (!force && cache.hasFile(commit, file)) return true;
    const meta = known ?? await fileMeta(c, id, commit, file);
    if (!meta) return false;
    // Checked before the ETag names a path: only a verifiable hash may become a blob name.
    const etag = checkEtag(c, id, file, meta.etag);
    const blob = cache.blob(etag);
    if (force && fs.existsSync(blob) && !(await matchesEtag(blob, etag))) {
      o.onWarning?.(`the cached ${file} (${blob}) does not match the hub's hash ${etag}; downloading it again`);
      fs.rmSync(blob, { force: true });
    }
    if (!fs.existsSync(blob)) {
      fs.mkdirSync(path.dirname(blob), { recursive: true });
      await withFileLock(`${blob}.openelm-lock`, c.signal, async () => {
        if (fs.existsSync(blob)) return; // another process finished it while we waited
        await downloadBlob(c, id, commit, file, blob, meta, (p) => onProgress?.({ repo: id, file, ...p, done: false }));
        onProgress?.({ repo: id, file, downloaded: meta.size ?? fs.statSync(blob).size, total: meta.size, done: true });
      });
    }
    cache.link(commit, file, etag);
    return true;
  };

  await ensure(CONFIG, cfgMeta);
  if (!(await ensure(SINGLE))) {
    if (!(await ensure(INDEX))) throw new OpenELMError('hub', `${id}@${revision} has neither ${SINGLE} nor ${INDEX}`);
    for (const shard of shardsOf(cache.snapshotFile(commit, INDEX))) {
      if (!(await ensure(shard))) throw new OpenELMError('hub', `${id}@${revision}: shard ${shard} listed in ${INDEX} does not exist`);
    }
  }
  for (const f of OPTIONAL) {
    if (!force && (cache.hasFile(commit, f) || cache.isMarkedMissing(commit, f))) continue;
    if (!(await ensure(f))) cache.markMissing(commit, f);
  }
  cache.writeRef(revision, commit);
  return cache.snapshotDir(commit);
}
