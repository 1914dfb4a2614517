// A plain static file server for browser tests: folders mounted at URL prefixes, optional COOP/COEP
// headers, HEAD and 404s, on a loopback port. It serves files only; the page does all the work.

import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.map': 'application/json', '.svg': 'image/svg+xml', '.txt': 'text/plain; charset=utf-8',
};

export interface StaticServer { url: string; close(): Promise<void>; requests: string[]; }

export interface StaticServerOptions {
  /** URL prefix (starting and ending with "/") → folder. */
  mounts: Record<string, string>;
  /** Send Cross-Origin-Opener-Policy / -Embedder-Policy (default true). */
  isolate?: boolean;
  /** Answer every unknown path with this file and 200, as single-page-app hosts do. */
  fallback?: string;
  /** URL path → bytes after which its body breaks off (the connection drops; content-length says the whole file). */
  cut?: Record<string, number>;
}

export async function startStaticServer(opts: StaticServerOptions): Promise<StaticServer> {
  const requests: string[] = [];
  const mounts = Object.entries(opts.mounts).sort((a, b) => b[0].length - a[0].length);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname);
    requests.push(`${req.method} ${p}`);
    if (opts.isolate !== false) {
      res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      res.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
    res.setHeader('Cache-Control', 'no-store');
    let file: string | undefined;
    for (const [prefix, dir] of mounts) {
      if (!p.startsWith(prefix)) continue;
      const rel = p.slice(prefix.length) || 'index.html';
      const f = path.resolve(dir, rel);
      if (f.startsWith(path.resolve(dir) + path.sep) && fs.existsSync(f) && fs.statSync(f).isFile()) file = f;
      break;
    }
    if (!file && opts.fallback) file = opts.fallback;
    if (!file) { res.writeHead(404, { 'content-type': 'text/plain' }); res.end('not found'); return; }
    const size = fs.statSync(file).size;
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': size });
    if (req.method === 'HEAD') { res.end(); return; }
    const cut = opts.cut?.[p];
    if (cut !== undefined) {
      res.write(fs.readFileSync(file).subarray(0, cut), () => setTimeout(() => res.destroy(), 50));
      return;
    }
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
