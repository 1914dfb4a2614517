// `openelm web`: serves the built web app (dist/web) and one model folder to a browser on this
// machine. The page runs the model itself (WebAssembly in a Web Worker); this server only hands
// out files. It sends COOP/COEP so the page is cross-origin isolated (WASM threads), and tells the
// page which model it serves through /openelm-web.json.
//
//   /                     the app (dist/web/index.html and its scripts)
//   /model/<file>         the model folder's files (flat names only: config.json, *.safetensors, ...)
//   /openelm-web.json     { "model": "./model/", "name": "<what --model said>" }

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { OpenELMError } from '../core/errors.js';

/** dist/web next to the compiled package (dist/src/serve/web-app.js → dist/web). */
export function defaultAppDir(): string {
  return fileURLToPath(new URL('../../web/', import.meta.url));
}

export interface WebAppServerOptions {
  /** The built app (default: the package's dist/web). */
  appDir?: string;
  /** The model folder to serve at /model/. */
  modelDir: string;
  /** The model's name as the user gave it (hub id or path). */
  name: string;
  host?: string;
  port?: number;
  log?: (line: string) => void;
}

export interface WebAppServer { url: string; close(): Promise<void>; }

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8', '.map': 'application/json', '.txt': 'text/plain; charset=utf-8',
  '.svg': 'image/svg+xml', '.model': 'application/octet-stream', '.safetensors': 'application/octet-stream',
};

// A model file name: one path segment, no dot files (no traversal by construction).
const MODEL_FILE = /^[\w-][\w.-]*$/;

function sendFile(req: http.IncomingMessage, res: http.ServerResponse, file: string, cache: string): void {
  let st: fs.Stats;
  try { st = fs.statSync(file); } catch { notFound(res); return; }
  if (!st.isFile()) { notFound(res); return; }
  const headers: http.OutgoingHttpHeaders = {
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': cache,
    'accept-ranges': 'bytes', 'last-modified': st.mtime.toUTCString(),
  };
  let start = 0, end = st.size - 1, status = 200;
  const range = /^bytes=(\d*)-(\d*)$/.exec(String(req.headers.range ?? ''));
  if (range && (range[1] || range[2])) {
    if (range[1]) { start = Number(range[1]); if (range[2]) end = Math.min(end, Number(range[2])); }
    else { start = Math.max(0, st.size - Number(range[2])); }
    if (start > end || start >= st.size) {
      res.writeHead(416, { ...headers, 'content-range': `bytes */${st.size}` });
      res.end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${st.size}`;
  }
  headers['content-length'] = end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD' || st.size === 0) { res.end(); return; }
  fs.createReadStream(file, { start, end }).on('error', () => res.destroy()).pipe(res);
}

function notFound(res: http.ServerResponse): void {
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  res.end('not found\n');
}

export async function startWebAppServer(opts: WebAppServerOptions): Promise<WebAppServer> {
  const appDir = path.resolve(opts.appDir ?? defaultAppDir());
  if (!fs.existsSync(path.join(appDir, 'index.html'))) {
    throw new OpenELMError('usage', `the web app is not built (no ${path.join(appDir, 'index.html')}): run npm run build:web`);
  }
  const modelDir = path.resolve(opts.modelDir);
  if (!fs.existsSync(path.join(modelDir, 'config.json'))) throw new OpenELMError('model', `${opts.modelDir} is not a model folder: it has no config.json`);
  const info = JSON.stringify({ model: './model/', name: opts.name }) + '\n';
  const server = http.createServer((req, res) => {
    // Cross-origin isolation: the WASM backend's threads share memory with their workers.
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    let p: string;
    try { p = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname); } catch { return notFound(res); }
    opts.log?.(`${req.method} ${p}`);
    if (p === '/openelm-web.json') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : info);
      return;
    }
    if (p.startsWith('/model/')) {
      const name = p.slice('/model/'.length);
      if (!MODEL_FILE.test(name)) return notFound(res);
      // The weights do not change while this runs; the browser may keep them.
      return sendFile(req, res, path.join(modelDir, name), 'no-cache');
    }
    const rel = p === '/' ? 'index.html' : p.slice(1);
    const file = path.resolve(appDir, rel);
    if (!file.startsWith(appDir + path.sep)) return notFound(res);
    sendFile(req, res, file, 'no-cache');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'EADDRINUSE'
      ? new OpenELMError('usage', `port ${opts.port} on ${opts.host ?? '127.0.0.1'} is in use; pick another with --port`)
      : new OpenELMError('usage', `cannot listen on ${opts.host ?? '127.0.0.1'}:${opts.port}: ${e.message}`)));
    server.listen(opts.port ?? 8080, opts.host ?? '127.0.0.1', resolve);
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${a.port}/`,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
