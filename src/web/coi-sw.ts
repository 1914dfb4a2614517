// Cross-origin isolation for hosts that cannot set headers (GitHub Pages and the like): this
// service worker answers the site's own requests with COOP/COEP added, so the page becomes
// crossOriginIsolated after one reload (app.ts) and the WASM backend may use threads. Requests to
// other origins (model downloads) pass through untouched; they are CORS requests, which COEP allows.

interface FetchEventLike extends Event { request: Request; respondWith(r: Promise<Response>): void; }
interface ExtendableEventLike extends Event { waitUntil(p: Promise<unknown>): void; }
interface SwScope {
  location: { origin: string };
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
  addEventListener(type: 'install' | 'activate', cb: (e: ExtendableEventLike) => void): void;
  addEventListener(type: 'fetch', cb: (e: FetchEventLike) => void): void;
}
const sw = globalThis as unknown as SwScope;

sw.addEventListener('install', () => { void sw.skipWaiting(); });
sw.addEventListener('activate', (e) => e.waitUntil(sw.clients.claim()));
sw.addEventListener('fetch', (e) => {
  const req = e.request;
  if (new URL(req.url).origin !== sw.location.origin) return;
  if (req.cache === 'only-if-cached' && req.mode !== 'same-origin') return;
  e.respondWith(fetch(req).then((res) => {
    if (res.status === 0) return res;
    const headers = new Headers(res.headers);
    headers.set('Cross-Origin-Opener-Policy', 'same-origin');
    headers.set('Cross-Origin-Embedder-Policy', 'require-corp');
    headers.set('Cross-Origin-Resource-Policy', 'same-origin');
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }));
});
