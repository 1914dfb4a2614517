// Cross-origin access: off unless origins are allowed. Without CORS headers a browser page from
// another site cannot read the server's answers (and with JSON-only bodies it cannot send a request
// that skips the preflight), so a server on localhost is not an open API for every web page.
// `--cors ORIGIN` (repeatable) allows an origin such as https://app.example; `*` allows any.

import type * as http from 'node:http';

const ALLOW = {
  'access-control-allow-headers': 'authorization, content-type, x-api-key',
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-max-age': '600',
};

/** Normalize a configured origin ("https://App.example/" -> "https://app.example"); "*" stays. */
export function normalizeOrigin(origin: string): string {
  if (origin === '*') return origin;
  try {
    const u = new URL(origin);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.pathname.length > 1 || u.search || u.hash) return origin;
    return u.origin;
  } catch {
    return origin;
  }
}

/** Set the CORS headers a response to `req` gets (none when its Origin is not allowed). */
export function applyCors(req: http.IncomingMessage, res: http.ServerResponse, allowed: readonly string[]): void {
  if (allowed.length === 0) return;
  const origin = req.headers.origin;
  res.setHeader('vary', 'origin');
  if (typeof origin !== 'string') return;
  if (allowed.includes('*')) res.setHeader('access-control-allow-origin', '*');
  else if (allowed.includes(normalizeOrigin(origin))) res.setHeader('access-control-allow-origin', origin);
  else return;
  for (const [k, v] of Object.entries(ALLOW)) res.setHeader(k, v);
}
