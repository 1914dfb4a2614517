// A loopback stand-in for huggingface.co, answering the way the real hub does:
// /<org>/<name>/resolve/<rev>/<file> gives small files directly (ETag = git blob sha1) and answers
// LFS files (*.safetensors) with a 302 to an absolute CDN URL carrying X-Linked-Etag (sha256),
// X-Linked-Size and X-Repo-Commit; the CDN path supports Range requests. Unknown repos get 401
// RepoNotFound without a token (as the hub does), gated ones 401/403 GatedRepo, missing files 404
// EntryNotFound. Faults can be injected: cut a CDN transfer after N bytes, stall it, or corrupt it.

import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  files: Record<string, Buffer>;
  commit?: string;
  /** Needs `Bearer <token>` (401 without, 403 with a wrong one). */
  gated?: boolean;
}

export interface LoggedRequest { method: string; path: string; range?: string; auth?: string; }

export interface FakeHub {
  url: string;
  log: LoggedRequest[];
  /** Next CDN transfer of a blob stops after `bytes` bytes (connection destroyed). */
  cutNext(bytes: number): void;
  /** Next CDN transfer of a blob sends `bytes` bytes, then nothing more until the client goes away. */
  stallNext(bytes: number): void;
  /** The next `times` CDN transfers send flipped bytes. */
  corruptNext(times?: number): void;
  close(): Promise<void>;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const isLfs = (f: string) => f.endsWith('.safetensors');

/** The files of a model folder, keyed by name. */
export function folderFiles(dir: string): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const f of fs.readdirSync(dir)) out[f] = fs.readFileSync(path.join(dir, f));
  return out;
}

export async function startFakeHub(repos: Record<string, FakeRepo>, token = 'hf_good'): Promise<FakeHub> {
  const log: LoggedRequest[] = [];
  const blobs = new Map<string, Buffer>();
  for (const r of Object.values(repos)) {
    r.commit ??= createHash('sha1').update(Object.keys(r.files).join()).digest('hex');
    for (const [f, b] of Object.entries(r.files)) if (isLfs(f)) blobs.set(sha256(b), b);
  }
  let cut = -1, stall = -1, corrupt = 0;
  let base = '', cdnBase = '';
  const fail = (res: http.ServerResponse, status: number, code: string) => {
    res.writeHead(status, { 'x-error-code': code, 'x-error-message': code, 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: code }));
  };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', base);
    log.push({ method: req.method ?? '', path: u.pathname, range: req.headers.range, auth: req.headers.authorization });
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(u.pathname);
    if (cdn) {
      const b = blobs.get(cdn[1]);
      if (!b) return fail(res, 404, 'EntryNotFound');
      let start = 0, status = 200;
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
      if (m) {
        start = Number(m[1]);
        if (start >= b.length) { res.writeHead(416, { 'content-range': `bytes */${b.length}` }); return res.end(); }
        status = 206;
      }
      let body = b.subarray(start);
      if (corrupt > 0 && req.method === 'GET') { corrupt--; body = Buffer.from(body.map((x) => x ^ 0xff)); }
      const h: http.OutgoingHttpHeaders = { 'content-length': body.length, 'accept-ranges': 'bytes', etag: `"${cdn[1]}"` };
      if (status === 206) h['content-range'] = `bytes ${start}-${b.length - 1}/${b.length}`;
      res.writeHead(status, h);
      if (req.method === 'HEAD') return res.end();
      if (stall >= 0) {
        const n = stall; stall = -1;
        res.write(body.subarray(0, n));
        return;
      }
      if (cut >= 0) {
        const n = cut; cut = -1;
        // Cut a moment after the bytes went out: a client drops data still queued in its stream
        // when the socket errors, and a real cut rarely coincides with the last packet.
        res.write(body.subarray(0, n), () => { setTimeout(() => res.socket?.destroy(), 150); });
        return;
      }
      return res.end(body);
    }
    const m = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/(.+)$/.exec(u.pathname);
    if (!m) return fail(res, 404, 'NotFound');
    const [, repoId, rev, file] = [m[0], m[1], decodeURIComponent(m[2]), decodeURIComponent(m[3])];
    const repo = repos[repoId];
    const auth = req.headers.authorization;
    if (!repo) return fail(res, auth ? 404 : 401, 'RepoNotFound');
    if (repo.gated && auth !== `Bearer ${token}`) return fail(res, auth ? 403 : 401, 'GatedRepo');
    if (rev !== 'main' && rev !== repo.commit) return fail(res, 404, 'RevisionNotFound');
    const b = repo.files[file];
    if (!b) {
      res.setHeader('x-repo-commit', repo.commit!);
      return fail(res, 404, 'EntryNotFound');
    }
    if (isLfs(file)) {
      const sha = sha256(b);
      res.writeHead(302, {
        location: `${cdnBase}/cdn/${sha}?name=${encodeURIComponent(file)}`, 'x-repo-commit': repo.commit!,
        'x-linked-etag': `"${sha}"`, 'x-linked-size': b.length, etag: `"${gitSha1(b)}"`, 'content-length': 0,
      });
      return res.end();
    }
    res.writeHead(200, { 'content-length': b.length, etag: `"${gitSha1(b)}"`, 'x-repo-commit': repo.commit!, 'content-type': 'application/json' });
    res.end(req.method === 'HEAD' ? undefined : b);
  });
  // The CDN is another origin (another port), as cdn-lfs.huggingface.co is for the real hub.
  const cdnServer = http.createServer(server.listeners('request')[0] as http.RequestListener);
  const listen = (s: http.Server) => new Promise<string>((r) => s.listen(0, '127.0.0.1', () => r(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));
  const url = await listen(server);
  cdnBase = await listen(cdnServer);
  base = url;
  const close = (s: http.Server) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); });
  return {
    url, log,
    cutNext(bytes) { cut = bytes; },
    stallNext(bytes) { stall = bytes; },
    corruptNext(times = 1) { corrupt = times; },
    close: async () => { await close(server); await close(cdnServer); },
  };
}
