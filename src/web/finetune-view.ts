// The Fine-tune tab: training data (pasted text, JSONL records or chat examples), the method the
// build trains (LoRA/DoRA adapters, full model) and its settings, a live loss plot, then chat with
// the tuned model or save it (an adapter in PEFT's format, or a model folder). Training runs in the
// engine worker through browser/finetune.ts; when no trainer is bundled the tab says so.

import { h, clear, field, numberInput, saveFile, select } from './dom.js';
import { messageOf, type AppContext } from './state.js';
import { lossPlot } from './loss-plot.js';
import { DEFAULT_FINETUNE, checkFineTuneData, type FineTuneData, type FineTuneMethod, type FineTuneSettings } from '../browser/finetune.js';

const PLACEHOLDER: Record<FineTuneData['format'], string> = {
  text: 'Paste the text to learn from. Blank lines separate examples.',
  jsonl: '{"text": "One training example per line"}\n{"prompt": "Question: …\\nAnswer:", "completion": " …"}',
  chat: '{"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "I am a small model fine-tuned in your browser."}]}',
};

const METHOD_LABEL: Record<FineTuneMethod, string> = { lora: 'LoRA', dora: 'DoRA', full: 'Full model' };
/** Learning rates to start from: adapters take larger steps than full fine-tuning. */
const METHOD_LR: Record<FineTuneMethod, number> = { lora: 2e-4, dora: 2e-4, full: 2e-5 };

export function finetuneView(ctx: AppContext): HTMLElement {
  const methods = ctx.engine.hello.finetune;
  const available = methods.length > 0;
  let format: FineTuneData['format'] = 'chat';
  let training = false;
  const data = h('textarea', { rows: 9, class: 'mono', placeholder: PLACEHOLDER.chat, spellcheck: false });
  const count = h('span', { class: 'muted' });
  const fileInput = h('input', { type: 'file', accept: '.txt,.jsonl,.json,text/plain', hidden: true });
  const loadFile = h('button', { textContent: 'Load file…' });
  loadFile.onclick = () => fileInput.click();
  fileInput.onchange = async () => {
    const f = fileInput.files?.[0];
    fileInput.value = '';
    if (!f) return;
    data.value = await f.text();
    if (/\.jsonl?$/i.test(f.name) && format === 'text') setFormat(/"messages"/.test(data.value) ? 'chat' : 'jsonl');
    recount();
  };
  const formats = h('div', { class: 'segmented', attrs: { role: 'tablist' } },
    ...(['text', 'jsonl', 'chat'] as const).map((f) => {
      const b = h('button', { textContent: f === 'text' ? 'Text' : f === 'jsonl' ? 'JSONL' : 'Chat examples', data: { format: f } });
      b.onclick = () => setFormat(f);
      return b;
    }));
  function setFormat(f: FineTuneData['format']): void {
    format = f;
    for (const b of formats.querySelectorAll<HTMLButtonElement>('button')) b.classList.toggle('on', b.dataset.format === f);
    data.placeholder = PLACEHOLDER[f];
    recount();
  }
  function recount(): void {
    if (!data.value.trim()) { count.textContent = ''; return; }
    try {
      const { examples } = checkFineTuneData({ format, content: data.value });
      count.textContent = `${examples} example${examples === 1 ? '' : 's'}`;
      count.className = 'muted';
    } catch (e) { count.textContent = messageOf(e); count.className = 'bad-text'; }
  }
  data.oninput = recount;

  const d = DEFAULT_FINETUNE;
  const first: FineTuneMethod = methods[0] ?? d.method;
  const method = select((available ? methods : ['lora', 'dora'] as FineTuneMethod[]).map((m) => [m, METHOD_LABEL[m]]), first);
  const rank = numberInput(d.rank, { min: 1, max: 256, step: 1 });
  const alpha = numberInput(d.alpha, { min: 0.1, step: 1 });
  const lr = numberInput(METHOD_LR[first], { min: 0, step: 0.00001 });
  const steps = numberInput(d.steps, { min: 1, step: 1 });
  const batch = numberInput(d.batchSize, { min: 1, step: 1 });
  const seqLen = numberInput(d.sequenceLength, { min: 8, step: 8 });
  const targets = ['qkv_proj', 'out_proj', 'proj_1', 'proj_2'].map((t) => {
    const c = h('input', { type: 'checkbox', checked: d.targets.includes(t), value: t });
    return { t, c, el: h('label', { class: 'check' }, c, h('span', { class: 'mono' }, t)) };
  });

  const plot = lossPlot(d.steps);
  const status = h('div', { class: 'train-status muted' }, 'No run yet.');
  const start = h('button', { class: 'primary', textContent: 'Start training' });
  const stopBtn = h('button', { class: 'danger', textContent: 'Stop', hidden: true });
  const useAdapter = h('input', { type: 'checkbox', disabled: true });
  const useLabel = h('span', null, 'Chat with the adapter');
  const save = h('button', { textContent: 'Save adapter (PEFT)', disabled: true });
  const rankField = field('Rank', rank), alphaField = field('Alpha', alpha);
  const targetsField = h('div', { class: 'field targets' }, h('span', { class: 'field-label' }, 'Adapt'), h('div', { class: 'checks' }, ...targets.map((x) => x.el)));
  function labelFor(full: boolean): void {
    useLabel.textContent = full ? 'Chat with the fine-tuned model' : 'Chat with the adapter';
    save.textContent = full ? 'Save model (safetensors)' : 'Save adapter (PEFT)';
  }
  function methodChanged(): void {
    // Rank, alpha and the adapted modules only mean something for an adapter.
    const full = method.value === 'full';
    for (const el of [rankField, alphaField, targetsField]) el.hidden = full;
    lr.value = String(METHOD_LR[method.value as FineTuneMethod]);
    if (save.disabled) labelFor(full);
  }
  method.onchange = methodChanged;

  function settings(): FineTuneSettings {
    const int = (i: HTMLInputElement, name: string, min: number) => {
      const v = Number(i.value);
      if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be a whole number ≥ ${min}`);
      return v;
    };
    const num = (i: HTMLInputElement, name: string) => {
      const v = Number(i.value);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a number > 0`);
      return v;
    };
    const t = targets.filter((x) => x.c.checked).map((x) => x.t);
    if (!t.length && method.value !== 'full') throw new Error('pick at least one module to adapt');
    return {
      ...d, method: method.value as FineTuneSettings['method'], rank: int(rank, 'rank', 1), alpha: num(alpha, 'alpha'),
      learningRate: num(lr, 'learning rate'), steps: int(steps, 'steps', 1), batchSize: int(batch, 'batch size', 1),
      sequenceLength: int(seqLen, 'sequence length', 8), targets: t,
    };
  }

  start.onclick = async () => {
    if (!ctx.model) { ctx.error('load a model first (Model tab)'); return; }
    let s: FineTuneSettings;
    const content: FineTuneData = { format, content: data.value };
    try { s = settings(); checkFineTuneData(content); } catch (e) { ctx.error(messageOf(e)); return; }
    ctx.clearError();
    training = true;
    ctx.setBusy(true);
    plot.reset(s.steps);
    status.textContent = 'Preparing…';
    const t0 = performance.now();
    try {
      const losses: number[] = [];
      const done = await ctx.engine.request({ type: 'finetune', data: content, settings: s }, (m) => {
        if (m.type !== 'step') return;
        plot.add(m.step.step, m.step.loss);
        losses.push(m.step.loss);
        document.body.dataset.losses = JSON.stringify(losses);
        status.textContent = `step ${m.step.step}/${m.step.steps} · loss ${m.step.loss.toFixed(4)} · ${(m.step.tokens / (m.step.ms / 1000)).toFixed(0)} tok/s`;
      });
      const secs = ((performance.now() - t0) / 1000).toFixed(1);
      status.textContent += (done.steps ?? s.steps) < s.steps ? ` · stopped after ${done.steps ?? 0} steps (${secs} s)` : ` · done in ${secs} s`;
      labelFor(s.method === 'full');
      useAdapter.disabled = false;
      useAdapter.checked = true;
      save.disabled = false;
    } catch (e) {
      status.textContent = 'Not trained.';
      ctx.error(messageOf(e));
    } finally {
      training = false;
      ctx.setBusy(false);
    }
  };
  stopBtn.onclick = () => ctx.engine.stop();
  useAdapter.onchange = () => {
    void ctx.engine.request({ type: 'adapter', action: useAdapter.checked ? 'use' : 'base' }).catch((e) => ctx.error(messageOf(e)));
  };
  save.onclick = async () => {
    try {
      const done = await ctx.engine.request({ type: 'adapter', action: 'files' });
      for (const f of done.files ?? []) saveFile(f.name, f.bytes, f.name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    } catch (e) { ctx.error(messageOf(e)); }
  };

  const banner = available ? null : h('p', { class: 'notice warn' },
    'Training is not part of this build. You can prepare data and settings here; training starts once a trainer is bundled in.');
  if (!available) start.disabled = true;

  const el = h('section', { class: 'view finetune-view' },
    banner,
    h('div', { class: 'ft-grid' },
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, 'Training data'), formats),
        data,
        h('div', { class: 'row spread' }, count, loadFile), fileInput,
      ),
      h('div', { class: 'card' },
        h('h2', null, 'Settings'),
        h('div', { class: 'settings-grid' },
          field('Method', method), rankField, alphaField, field('Learning rate', lr),
          field('Steps', steps), field('Batch size', batch), field('Tokens per sequence', seqLen),
        ),
        targetsField,
        h('div', { class: 'row' }, start, stopBtn),
      ),
    ),
    h('div', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', null, 'Loss'), status),
      plot.el,
      h('div', { class: 'row spread' }, h('label', { class: 'check' }, useAdapter, useLabel), save),
    ),
  );
  setFormat('chat');
  methodChanged();
  ctx.onChange(() => {
    start.hidden = training;
    stopBtn.hidden = !training;
    start.disabled = !available || ctx.busy || !ctx.model;
    if (!ctx.model) { clear(status); status.append('Load a model first (Model tab).'); }
    else if (status.textContent === 'Load a model first (Model tab).') status.textContent = 'No run yet.';
  });
  return el;
}
