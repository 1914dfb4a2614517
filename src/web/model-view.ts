// The Model tab: pick a model (the serving command's, a URL, a hub id, or files dropped or picked),
// see its download size and the memory it needs before anything large is fetched, then load it
// with progress.

import { h, append, clear, field, fmtBytes, fmtCount, select } from './dom.js';
import { messageOf, type AppContext } from './state.js';
import { EngineError } from './engine-client.js';
import type { KeptSummary, LoadSettings, ModelRef, PlanSummary } from './protocol.js';
import type { LocalFile } from '../browser/model-files.js';
import type { LoadProgress } from '../browser/load.js';

const SUGGESTIONS = ['apple/OpenELM-270M-Instruct', 'apple/OpenELM-450M-Instruct', 'apple/OpenELM-1_1B-Instruct', 'apple/OpenELM-3B-Instruct'];

export interface ModelView {
  el: HTMLElement;
  /** Inspect a model and show its plan (the user then loads it). */
  inspect(ref: ModelRef): Promise<void>;
  /** Load a model now, showing progress; resolves when it is ready. */
  load(ref: ModelRef, settings?: Partial<LoadSettings>): Promise<void>;
  settings(): LoadSettings;
}

/** Files of a dropped folder, with their paths (DataTransfer entries), or the plain files. */
async function droppedFiles(dt: DataTransfer): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  const entries = Array.from(dt.items).map((i) => i.webkitGetAsEntry?.()).filter((e): e is FileSystemEntry => !!e);
  if (!entries.length) return Array.from(dt.files, (file) => ({ path: file.name, file }));
  const walk = async (e: FileSystemEntry, prefix: string): Promise<void> => {
    if (e.isFile) {
      const file = await new Promise<File>((res, rej) => (e as FileSystemFileEntry).file(res, rej));
      out.push({ path: prefix + e.name, file });
    } else if (e.isDirectory) {
      const reader = (e as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const c of batch) await walk(c, `${prefix}${e.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return out;
}

/** A kept model folder as users know it: the hub id of hub URLs, else the folder's last two path segments. */
function folderName(dir: string): string {
  const u = new URL(dir);
  const hub = /^\/([^/]+\/[^/]+)\/resolve\/[^/]+\/$/.exec(u.pathname);
  if (hub) return decodeURIComponent(hub[1]);
  return decodeURIComponent(u.pathname.split('/').filter(Boolean).slice(-2).join('/')) || u.host;
}

export function modelView(ctx: AppContext): ModelView {
  const hello = ctx.engine.hello;
  const backendSel = select([
    ['auto', 'Auto'], ...hello.backends.filter((b) => b !== 'auto').map((b) => [b, b === 'wasm' ? 'WebAssembly (CPU)' : b === 'js' ? 'JavaScript (reference, slow)' : b === 'webgpu' ? 'WebGPU' : b] as [string, string]),
  ], 'auto');
  const dtypeSel = select([['auto', 'As stored'], ['bf16', 'bf16'], ['f16', 'f16'], ['f32', 'f32'], ['q8', 'q8 (8-bit)'], ['q4', 'q4 (4-bit)']], 'auto');
  const keep = h('input', { type: 'checkbox', checked: hello.keepDownloads, disabled: !hello.keepDownloads });
  const urlInput = h('input', { type: 'text', placeholder: 'apple/OpenELM-270M-Instruct or https://…/model-folder/', spellcheck: false, autocapitalize: 'off', autocomplete: 'off' });
  const planBox = h('div', { class: 'plan', hidden: true });
  const progress = h('div', { class: 'progress', hidden: true }, h('div', { class: 'bar' }, h('div', { class: 'fill' })), h('div', { class: 'progress-text' }));
  const folderInput = h('input', { type: 'file', multiple: true, hidden: true, attrs: { webkitdirectory: '' } });
  const filesInput = h('input', { type: 'file', multiple: true, hidden: true });
  const keptList = h('div', { class: 'kept' });
  // After a GPU load fails (too large for a buffer, out of memory, device lost): the CPU way, offered, never taken silently.
  const fallbackBox = h('div', { class: 'notice bad fallback', hidden: true });
  let current: ModelRef | null = null;
  let lastPlan: PlanSummary | null = null;

  const settings = (): LoadSettings => ({
    backend: backendSel.value, dtype: dtypeSel.value as LoadSettings['dtype'],
    keep: keep.checked && current?.kind === 'string' && current.value !== ctx.served?.model,
  });

  function showProgress(p: LoadProgress | null): void {
    progress.hidden = p === null;
    if (!p) return;
    const fill = progress.querySelector<HTMLElement>('.fill')!;
    const text = progress.querySelector<HTMLElement>('.progress-text')!;
    if (p.phase === 'download' && p.file) {
      const frac = p.total ? (p.loaded ?? 0) / p.total : 0;
      fill.style.width = `${(frac * 100).toFixed(1)}%`;
      text.textContent = p.file.cached ? `${p.file.file}: from this browser's storage` :
        `Downloading ${p.file.file}: ${fmtBytes(p.file.loaded)}${p.file.total ? ` of ${fmtBytes(p.file.total)}` : ''}`;
    } else if (p.phase === 'load') { fill.style.width = '100%'; text.textContent = 'Reading the weights onto the backend…'; }
    else if (p.phase === 'compile') { fill.style.width = '100%'; text.textContent = 'Compiling the GPU kernels…'; }
    else if (p.phase === 'plan') { fill.style.width = '0%'; text.textContent = 'Reading the model\'s config…'; }
    else { fill.style.width = '100%'; text.textContent = 'Ready'; }
  }

  function describeRef(ref: ModelRef): string {
    return ref.kind === 'files' ? `${ref.files.length} picked file${ref.files.length === 1 ? '' : 's'}` : ref.label ?? ref.value;
  }

  function renderPlan(p: PlanSummary, ref: ModelRef): void {
    clear(planBox);
    planBox.hidden = false;
    const m = p.memory;
    const rows: [string, string][] = [
      ['Parameters', `${fmtCount(p.params)} · ${p.layers} layers · ${p.fileDType} weights${p.loadDType !== p.fileDType ? ` → ${p.loadDType}` : ''}`],
      ['Download', p.sizeKnown ? (p.downloadBytes === 0 ? `nothing (${fmtBytes(p.totalBytes)} already in this browser)` : `${fmtBytes(p.downloadBytes)}${p.totalBytes > p.downloadBytes ? ` (${fmtBytes(p.totalBytes - p.downloadBytes)} already kept)` : ''}`) : 'size not reported by the server'],
      ['Memory', `about ${fmtBytes(m.total)}: ${fmtBytes(m.weights)} weights + ${fmtBytes(m.kvCache)} KV cache (${p.contextTokens} tokens) + ${fmtBytes(m.work)} working`],
      ['Limit', p.limitBytes !== null ? `${fmtBytes(p.limitBytes)} for this page (half of the ${fmtBytes(p.deviceMemoryBytes ?? 0)} this device reports)` : p.deviceMemoryBytes ? `the device reports ${fmtBytes(p.deviceMemoryBytes)}` : 'not reported by this browser'],
      ['Tokenizer', p.hasTokenizer ? 'the folder\'s tokenizer.model' : 'bundled Llama-2 tokenizer'],
    ];
    const load = h('button', { class: 'primary', textContent: p.downloadBytes > 0 ? `Download ${fmtBytes(p.downloadBytes)} and load` : 'Load', disabled: !p.fits || ctx.busy });
    load.onclick = () => { void view.load(ref).catch(() => undefined); };
    append(planBox,
      h('div', { class: 'plan-head' }, h('strong', { class: 'plan-name' }, p.name), p.instruct ? h('span', { class: 'tag' }, 'Instruct') : null),
      h('dl', null, ...rows.flatMap(([k, v]) => [h('dt', null, k), h('dd', null, v)])),
      p.advice ? h('p', { class: p.fits ? 'notice warn' : 'notice bad' }, p.advice) : null,
      h('div', { class: 'row' }, load),
    );
  }

  async function inspect(ref: ModelRef): Promise<void> {
    current = ref;
    fallbackBox.hidden = true;
    lastPlan = null;
    ctx.clearError();
    clear(planBox);
    planBox.hidden = false;
    planBox.append(h('p', { class: 'muted' }, `Looking at ${describeRef(ref)}…`));
    try {
      const done = await ctx.engine.request({ type: 'inspect', model: ref, settings: settings() });
      lastPlan = done.plan!;
      renderPlan(lastPlan, ref);
    } catch (e) {
      clear(planBox);
      planBox.hidden = true;
      ctx.error(messageOf(e));
      throw e;
    }
  }

  function offerWasm(ref: ModelRef): void {
    clear(fallbackBox);
    const b = h('button', { class: 'primary', textContent: 'Load on WebAssembly instead' });
    b.onclick = () => {
      backendSel.value = 'wasm';
      void load(ref, { backend: 'wasm' }).catch(() => undefined);
    };
    append(fallbackBox, h('span', null, 'The GPU could not hold this model. The CPU (WebAssembly) can run it, more slowly.'), b);
    fallbackBox.hidden = false;
  }

  async function load(ref: ModelRef, over: Partial<LoadSettings> = {}): Promise<void> {
    current = ref;
    fallbackBox.hidden = true;
    ctx.clearError();
    ctx.setBusy(true);
    showProgress({ phase: 'plan' });
    try {
      const done = await ctx.engine.request({ type: 'load', model: ref, settings: { ...settings(), ...over } },
        (m) => { if (m.type === 'progress') showProgress(m.progress); });
      ctx.setModel(done.info!);
      showProgress({ phase: 'ready' });
      void refreshKept();
      ctx.showTab('chat');
    } catch (e) {
      showProgress(null);
      if (e instanceof EngineError && !e.loaded) ctx.setModel(null);
      ctx.error(messageOf(e));
      const backend = over.backend ?? settings().backend;
      if (e instanceof EngineError && ['memory', 'device', 'webgpu'].includes(e.code) && /GPU/.test(e.message) && backend !== 'wasm' && hello.backends.includes('wasm')) {
        offerWasm(ref);
      }
      throw e;
    } finally {
      ctx.setBusy(false);
      if (lastPlan && current) renderPlan(lastPlan, current);
    }
  }

  /** The kept files by model folder, with what the site uses of its quota and a delete control per model. */
  async function refreshKept(action: 'list' | 'clear' | 'delete' = 'list', urls?: string[]): Promise<void> {
    try {
      const done = await ctx.engine.request({ type: 'cache', action, urls });
      renderKept(done.cache!);
    } catch (e) {
      if (action !== 'list') ctx.error(messageOf(e));
    }
  }

  function renderKept(k: KeptSummary): void {
    clear(keptList);
    const where = k.storage === 'opfs' ? 'in this browser\'s private file system (OPFS)' : k.storage === 'cache' ? 'in this browser\'s Cache API storage' : null;
    if (!where) {
      keptList.append(h('p', { class: 'muted' }, 'This page cannot keep downloads (browsers allow it on https or localhost only); models are downloaded on every load.'));
      return;
    }
    const folders = new Map<string, { urls: string[]; size: number }>();
    for (const f of k.files) {
      const dir = f.url.slice(0, f.url.lastIndexOf('/') + 1);
      const e = folders.get(dir) ?? { urls: [], size: 0 };
      e.urls.push(f.url);
      e.size += f.size;
      folders.set(dir, e);
    }
    const total = k.files.reduce((a, f) => a + f.size, 0);
    let usage: HTMLElement | null = null;
    if (k.usage !== null && k.quota) {
      const fill = h('div', { class: 'fill' });
      fill.style.width = `${Math.min(100, (100 * k.usage) / k.quota).toFixed(1)}%`;
      usage = h('div', { class: 'usage' }, h('div', { class: 'bar' }, fill),
        h('div', { class: 'progress-text' }, `This site uses ${fmtBytes(k.usage)} of the ${fmtBytes(k.quota)} the browser allows it`));
    }
    const delAll = h('button', { class: 'delete-all', textContent: 'Delete all', disabled: folders.size === 0 || ctx.busy });
    delAll.onclick = () => { void refreshKept('clear'); };
    append(keptList,
      h('p', { class: 'muted kept-summary' }, folders.size
        ? `${folders.size} model${folders.size === 1 ? '' : 's'}, ${fmtBytes(total)} kept ${where}; loading ${folders.size === 1 ? 'it' : 'them'} again needs no download.`
        : `Nothing kept yet. Downloads are kept ${where}.`),
      folders.size ? h('ul', { class: 'kept-list' }, ...[...folders].map(([dir, e]) => {
        const del = h('button', { class: 'delete', textContent: 'Delete', disabled: ctx.busy, attrs: { 'aria-label': `Delete ${folderName(dir)}` } });
        del.onclick = () => { void refreshKept('delete', e.urls); };
        return h('li', { data: { folder: dir } },
          h('span', { class: 'kept-name' }, h('span', { class: 'mono' }, folderName(dir)), h('br'), h('span', { class: 'muted' }, `${e.urls.length} file${e.urls.length === 1 ? '' : 's'} · ${fmtBytes(e.size)}`)),
          del);
      })) : null,
      usage,
      h('div', { class: 'row' }, delAll),
    );
  }

  const fromInput = () => {
    const v = urlInput.value.trim();
    if (!v) { ctx.error('type a model URL or a hub id (org/name) first'); return; }
    void inspect({ kind: 'string', value: v }).catch(() => undefined);
  };
  urlInput.onkeydown = (e) => { if (e.key === 'Enter') fromInput(); };
  const inspectBtn = h('button', { class: 'primary', textContent: 'Inspect' });
  inspectBtn.onclick = fromInput;
  const pickFolder = h('button', { textContent: 'Choose folder…' });
  pickFolder.onclick = () => folderInput.click();
  const pickFiles = h('button', { textContent: 'Choose files…' });
  pickFiles.onclick = () => filesInput.click();
  const onPicked = (input: HTMLInputElement) => {
    const files = Array.from(input.files ?? [], (file) => ({ path: file.webkitRelativePath || file.name, file }));
    input.value = '';
    if (files.length) void inspect({ kind: 'files', files }).catch(() => undefined);
  };
  folderInput.onchange = () => onPicked(folderInput);
  filesInput.onchange = () => onPicked(filesInput);

  const drop = h('div', { class: 'dropzone' },
    h('p', null, h('strong', null, 'Drop a model folder here'), h('br'), h('span', { class: 'muted' }, 'config.json + model.safetensors (tokenizer.model optional)')),
    h('div', { class: 'row center' }, pickFolder, pickFiles), folderInput, filesInput);
  drop.ondragover = (e) => { e.preventDefault(); drop.classList.add('over'); };
  drop.ondragleave = () => drop.classList.remove('over');
  drop.ondrop = (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (!e.dataTransfer) return;
    void droppedFiles(e.dataTransfer).then((files) => inspect({ kind: 'files', files })).catch((err) => ctx.error(messageOf(err)));
  };

  const reinspect = () => { if (current && !ctx.busy) void inspect(current).catch(() => undefined); };
  backendSel.onchange = reinspect;
  dtypeSel.onchange = reinspect;

  const servedCard = ctx.served ? h('div', { class: 'served' },
    h('div', null, h('span', { class: 'muted' }, 'Served with this page'), h('br'), h('strong', null, ctx.served.name)),
    (() => { const b = h('button', { class: 'primary', textContent: 'Use this model' }); b.onclick = () => { void inspect({ kind: 'string', value: ctx.served!.model, label: ctx.served!.name }).catch(() => undefined); }; return b; })(),
  ) : null;

  const engineLine = hello.singleThread
    ? `WebAssembly runs on 1 thread: ${hello.singleThread}.`
    : `WebAssembly runs on ${hello.threads} threads (cross-origin isolated).`;

  const el = h('section', { class: 'view model-view' },
    h('div', { class: 'card' },
      h('h2', null, 'Choose a model'),
      servedCard,
      h('div', { class: 'row' }, urlInput, inspectBtn),
      h('div', { class: 'chips' }, ...SUGGESTIONS.map((s) => { const c = h('button', { class: 'chip', textContent: s.replace('apple/', '') }); c.onclick = () => { urlInput.value = s; fromInput(); }; return c; })),
      drop,
      h('div', { class: 'grid3' },
        field('Backend', backendSel),
        field('Weights', dtypeSel, 'q8/q4 quantize on load and need less memory'),
        h('label', { class: 'check' }, keep, h('span', null, 'Keep downloads in this browser')),
      ),
      planBox,
      fallbackBox,
      progress,
    ),
    h('div', { class: 'card' }, h('h2', null, 'Engine'), h('p', null, engineLine), h('p', { class: 'muted' }, `Backends in this build: ${hello.backends.filter((b) => b !== 'auto').join(', ')}.`)),
    h('div', { class: 'card storage' }, h('h2', null, 'Storage'), keptList),
  );
  void refreshKept();

  const view: ModelView = {
    el,
    inspect,
    load,
    settings,
  };
  ctx.onChange(() => {
    const btn = planBox.querySelector<HTMLButtonElement>('button.primary');
    if (btn && lastPlan) btn.disabled = ctx.busy || !lastPlan.fits;
    inspectBtn.disabled = ctx.busy;
    // deleting waits while a model loads or runs (the engine takes one request at a time)
    for (const b of keptList.querySelectorAll<HTMLButtonElement>('button')) b.disabled = ctx.busy || (b.classList.contains('delete-all') && !keptList.querySelector('.kept-list'));
  });
  return view;
}
