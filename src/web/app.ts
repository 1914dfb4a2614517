// The OpenELM web app: chat with and fine-tune OpenELM in the browser. The page holds the views;
// the engine runs in a Web Worker (engine-worker.ts).
//
// Automation hook (tests, demos): ?model=URL&prompt=TEXT&max_tokens=N&temperature=T&backend=NAME
// [&threads=N&dtype=D&keep=0&hub=ENDPOINT&seed=S&ignore_eos=1&gpu_max_buffer=BYTES] loads the model, runs one plain completion and sets
// document.body.dataset.ids (the generated token ids, JSON), .backend (the backend that ran),
// .threads, .tokensPerSecond, or .error (one line). .isolated (crossOriginIsolated) is set at start.
// A backend that was asked for and is unavailable is an error, never a fallback.

import { h, clear } from './dom.js';
import { startEngine, type Engine } from './engine-client.js';
import { messageOf, type AppContext, type Tab } from './state.js';
import { modelView } from './model-view.js';
import { chatView } from './chat-view.js';
import { finetuneView } from './finetune-view.js';
import type { LoadSettings, ModelInfo, Sampling } from './protocol.js';

const query = new URLSearchParams(location.search);
const body = document.body;
const root = document.getElementById('app') ?? body;

function banner(): HTMLElement {
  let b = document.getElementById('error-banner');
  if (!b) {
    b = h('div', { id: 'error-banner', class: 'error-banner', hidden: true, attrs: { role: 'alert' } });
    body.prepend(b);
  }
  return b;
}

function showError(message: string): void {
  const b = banner();
  clear(b);
  const close = h('button', { class: 'ghost', textContent: '×', title: 'Dismiss', attrs: { 'aria-label': 'Dismiss' } });
  close.onclick = () => { b.hidden = true; };
  b.append(h('span', null, message), close);
  b.hidden = false;
  body.dataset.error = message;
}

// Nothing may fail silently: anything uncaught is shown, and marked for tests (which expect none).
addEventListener('error', (e) => { body.dataset.uncaught = messageOf(e.error ?? e.message); showError(`Something went wrong: ${messageOf(e.error ?? e.message)}`); });
addEventListener('unhandledrejection', (e) => { body.dataset.uncaught = messageOf(e.reason); showError(`Something went wrong: ${messageOf(e.reason)}`); });

/**
 * Hosts that cannot send COOP/COEP get them from sw.js (a service worker that adds the headers to
 * this site's own responses). It takes effect on the next load, so the page reloads once.
 */
async function ensureIsolation(): Promise<boolean> {
  if (crossOriginIsolated || query.get('sw') === '0' || !('serviceWorker' in navigator) || !isSecureContext) return false;
  let reg: ServiceWorkerRegistration;
  try {
    reg = await navigator.serviceWorker.register(new URL('./sw.js', import.meta.url), { scope: './' });
  } catch {
    return false; // no sw.js on this host, or service workers are off: run without threads
  }
  if (navigator.serviceWorker.controller) return false; // controlled and still not isolated: this browser cannot be
  if (sessionStorage.getItem('openelm-sw-reload')) return false;
  sessionStorage.setItem('openelm-sw-reload', '1');
  const worker = reg.installing ?? reg.waiting ?? reg.active;
  if (worker && worker.state !== 'activated') {
    await new Promise<void>((res) => worker.addEventListener('statechange', () => { if (worker.state === 'activated') res(); }));
  }
  location.reload();
  return true;
}

async function servedModel(): Promise<{ model: string; name: string } | null> {
  try {
    const res = await fetch(new URL('./openelm-web.json', location.href));
    if (!res.ok || !/json/.test(res.headers.get('content-type') ?? '')) return null;
    const j = await res.json() as { model?: unknown; name?: unknown };
    return typeof j.model === 'string' ? { model: j.model, name: typeof j.name === 'string' ? j.name : j.model } : null;
  } catch { return null; }
}

function intParam(name: string, def: number, min: number): number {
  const v = query.get(name);
  if (v === null) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be a whole number ≥ ${min}, got "${v}"`);
  return n;
}

function numParam(name: string, def: number, ok: (n: number) => boolean, range: string): number {
  const v = query.get(name);
  if (v === null) return def;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new Error(`${name} must be ${range}, got "${v}"`);
  return n;
}

function buildUi(engine: Engine, served: AppContext['served']) {
  const listeners: (() => void)[] = [];
  const tabs: Record<Tab, HTMLButtonElement> = {} as Record<Tab, HTMLButtonElement>;
  const views: Partial<Record<Tab, HTMLElement>> = {};
  const status = h('div', { class: 'status' });
  const ctx: AppContext = {
    engine, model: null, busy: false, served,
    setModel(info: ModelInfo | null) { ctx.model = info; for (const f of listeners) f(); },
    setBusy(b: boolean) { ctx.busy = b; for (const f of listeners) f(); },
    showTab(t: Tab) {
      for (const [k, v] of Object.entries(views)) v!.hidden = k !== t;
      for (const [k, b] of Object.entries(tabs)) { b.classList.toggle('on', k === t); b.setAttribute('aria-selected', String(k === t)); }
      body.dataset.tab = t;
    },
    error: showError,
    clearError() { banner().hidden = true; delete body.dataset.error; },
    onChange(cb) { listeners.push(cb); },
  };
  const model = modelView(ctx);
  const chat = chatView(ctx);
  const ft = finetuneView(ctx);
  views.chat = chat.el; views.finetune = ft; views.model = model.el;
  const nav = h('nav', { class: 'tabs', attrs: { role: 'tablist' } },
    ...(['chat', 'finetune', 'model'] as Tab[]).map((t) => {
      const b = h('button', { textContent: t === 'chat' ? 'Chat' : t === 'finetune' ? 'Fine-tune' : 'Model', attrs: { role: 'tab' }, data: { tab: t } });
      b.onclick = () => ctx.showTab(t);
      tabs[t] = b;
      return b;
    }));
  const header = h('header', { class: 'top' },
    h('div', { class: 'brand' }, h('span', { class: 'logo', attrs: { 'aria-hidden': 'true' } }, 'elm'), h('span', null, 'OpenELM')),
    nav, status);
  const main = h('main', null, chat.el, ft, model.el);
  clear(root);
  root.append(header, main);
  ctx.onChange(() => {
    clear(status);
    if (ctx.model) status.append(h('span', { class: 'dot ok' }), h('span', { class: 'status-text' }, `${ctx.model.name.replace(/\/+$/, '').split('/').pop()} · ${ctx.model.backend}${ctx.model.threads > 1 ? ` ×${ctx.model.threads}` : ''}`));
    else status.append(h('span', { class: 'dot' }), h('span', { class: 'status-text muted' }, 'no model'));
    if (ctx.busy) status.classList.add('busy'); else status.classList.remove('busy');
  });
  ctx.setModel(null);
  engine.onFatal = (m) => { ctx.setBusy(false); showError(m); };
  return { ctx, model, chat };
}

async function automation(ui: ReturnType<typeof buildUi>, prompt: string): Promise<void> {
  const d = body.dataset;
  try {
    const model = query.get('model') ?? ui.ctx.served?.model;
    if (!model) throw new Error('the automation hook needs ?model=URL (a model folder URL or a hub id)');
    const maxTokens = intParam('max_tokens', 32, 1);
    const temperature = numParam('temperature', 0, (n) => n >= 0, 'a number ≥ 0');
    const threads = query.has('threads') ? intParam('threads', 1, 1) : undefined;
    const sampling: Partial<Sampling> = { maxTokens, temperature };
    if (query.has('seed')) sampling.seed = intParam('seed', 0, 0);
    if (query.get('ignore_eos') === '1') sampling.ignoreEos = true;
    ui.ctx.showTab('model');
    await ui.model.load({ kind: 'string', value: model, label: model === ui.ctx.served?.model ? ui.ctx.served.name : undefined }, {
      backend: query.get('backend') ?? 'auto', dtype: (query.get('dtype') ?? 'auto') as LoadSettings['dtype'], keep: query.get('keep') !== '0',
      hubEndpoint: query.get('hub') ?? undefined, threads,
      gpuMaxBuffer: query.has('gpu_max_buffer') ? intParam('gpu_max_buffer', 0, 1) : undefined,
    });
    ui.ctx.showTab('chat');
    const stats = await ui.chat.complete(prompt, sampling);
    const info = ui.ctx.model!;
    d.backend = info.backend;
    d.threads = String(info.threads);
    d.tokensPerSecond = stats.tokensPerSecond.toFixed(2);
    d.promptPerSecond = stats.promptPerSecond.toFixed(2);
    d.ids = JSON.stringify(stats.ids);
  } catch (e) {
    showError(messageOf(e));
  }
}

async function main(): Promise<void> {
  if (await ensureIsolation()) return;
  body.dataset.isolated = String(crossOriginIsolated);
  const [engine, served] = await Promise.all([startEngine(new URL('./engine-worker.js', import.meta.url)), servedModel()]);
  body.dataset.backends = engine.hello.backends.join(',');
  body.dataset.finetune = engine.hello.finetune.join(',');
  const ui = buildUi(engine, served);
  const prompt = query.get('prompt');
  if (prompt !== null) { await automation(ui, prompt); return; }
  const model = query.get('model') ?? served?.model;
  ui.ctx.showTab('model');
  if (model) {
    await ui.model.inspect({ kind: 'string', value: model, label: model === served?.model ? served.name : undefined }).catch(() => undefined);
  }
  body.dataset.ready = 'true';
}

main().catch((e) => { body.dataset.isolated ??= String(crossOriginIsolated); showError(messageOf(e)); });
