// The Chat tab: a conversation with the loaded model through its chat template (or plain
// completion), streamed token by token, with a stop button, sampling settings and the speed.

import { h, clear, field, numberInput, select } from './dom.js';
import { messageOf, type AppContext } from './state.js';
import type { RunStats, Sampling } from './protocol.js';

export interface ChatView {
  el: HTMLElement;
  /** Run a plain completion of `prompt` into the transcript (the automation hook). */
  complete(prompt: string, sampling: Partial<Sampling>): Promise<RunStats>;
}

interface Turn { role: 'user' | 'assistant'; el: HTMLElement; body: HTMLElement; }

export function chatView(ctx: AppContext): ChatView {
  const system = h('textarea', { rows: 2, placeholder: 'Optional: how the assistant should behave', value: '' });
  const mode = select([['chat', 'Chat (the model\'s template)'], ['complete', 'Completion (raw text)']], 'chat');
  const maxTokens = numberInput(256, { min: 1, max: 4096, step: 1 });
  const temperature = numberInput(0.7, { min: 0, max: 2, step: 0.05 });
  const topP = numberInput(0.9, { min: 0.05, max: 1, step: 0.05 });
  const topK = numberInput(40, { min: 0, step: 1 });
  const repPen = numberInput(1.2, { min: 0.5, max: 2, step: 0.05 });
  const settings = h('details', { class: 'settings' },
    h('summary', null, 'Settings'),
    h('div', { class: 'settings-grid' },
      field('System prompt', system),
      field('Mode', mode),
      field('Max new tokens', maxTokens),
      field('Temperature', temperature, '0 = greedy'),
      field('Top-p', topP),
      field('Top-k', topK, '0 = off'),
      field('Repetition penalty', repPen, 'Apple uses 1.2 for -Instruct'),
    ),
  );
  const log = h('div', { class: 'log', attrs: { 'aria-live': 'polite' } });
  const empty = h('div', { class: 'empty' }, h('p', null, 'No model loaded yet.'),
    (() => { const b = h('button', { class: 'primary', textContent: 'Choose a model' }); b.onclick = () => ctx.showTab('model'); return b; })());
  const input = h('textarea', { rows: 1, placeholder: 'Message OpenELM…', attrs: { enterkeyhint: 'send' } });
  const send = h('button', { class: 'primary send', textContent: 'Send' });
  const stop = h('button', { class: 'danger stop', textContent: 'Stop', hidden: true });
  const stats = h('div', { class: 'stats' });
  const newChat = h('button', { class: 'ghost', textContent: 'New chat' });
  const modelLine = h('div', { class: 'model-line' });
  const turns: Turn[] = [];
  let shown: AppContext['model'] = null;

  function sampling(): Partial<Sampling> {
    const num = (i: HTMLInputElement, name: string, ok: (v: number) => boolean): number => {
      const v = Number(i.value);
      if (i.value.trim() === '' || !Number.isFinite(v) || !ok(v)) throw new Error(`${name} "${i.value}" is out of range`);
      return v;
    };
    return {
      maxTokens: num(maxTokens, 'max new tokens', (v) => Number.isInteger(v) && v >= 1),
      temperature: num(temperature, 'temperature', (v) => v >= 0),
      topP: num(topP, 'top-p', (v) => v > 0 && v <= 1),
      topK: num(topK, 'top-k', (v) => Number.isInteger(v) && v >= 0),
      repetitionPenalty: num(repPen, 'repetition penalty', (v) => v > 0),
    };
  }

  function addTurn(role: Turn['role'], text: string): Turn {
    const body = h('div', { class: 'bubble' }, text);
    const el = h('div', { class: `turn ${role}` }, body);
    log.appendChild(el);
    const t = { role, el, body };
    turns.push(t);
    el.scrollIntoView({ block: 'end' });
    return t;
  }

  function showStats(s: RunStats): void {
    const m = ctx.model;
    const parts = [
      `${s.tokens} tokens`,
      `${s.tokensPerSecond.toFixed(1)} tok/s`,
      s.promptTokens ? `prompt ${s.promptTokens - (s.cachedTokens ?? 0)} tok at ${s.promptPerSecond.toFixed(0)} tok/s${s.cachedTokens ? ` (${s.cachedTokens} cached)` : ''}` : '',
      m ? m.describe : '',
      s.finishReason === 'abort' ? 'stopped' : s.finishReason === 'length' ? 'max tokens reached' : '',
    ].filter(Boolean);
    stats.textContent = parts.join(' · ');
  }

  async function run(kind: 'chat' | 'complete', text: string, samp: Partial<Sampling>): Promise<RunStats> {
    ctx.clearError();
    ctx.setBusy(true);
    addTurn('user', text);
    const reply = addTurn('assistant', '');
    reply.el.classList.add('streaming');
    let out = '';
    // Tokens can arrive far faster than frames: draw at most once per frame.
    let frame = 0;
    const draw = () => {
      frame = 0;
      const follow = log.scrollHeight - log.scrollTop - log.clientHeight < 120;
      reply.body.textContent = out;
      if (follow) log.scrollTop = log.scrollHeight;
    };
    try {
      const req = kind === 'chat'
        ? { type: 'chat' as const, content: text, system: system.value, sampling: samp }
        : { type: 'generate' as const, prompt: text, sampling: samp };
      const done = await ctx.engine.request(req, (m) => {
        if (m.type !== 'chunk') return;
        out += m.text;
        frame ||= requestAnimationFrame(draw);
      });
      if (frame) cancelAnimationFrame(frame);
      draw();
      const s = done.stats!;
      if (!out && !s.text) reply.body.append(h('span', { class: 'muted' }, '(no text)'));
      showStats(s);
      return s;
    } catch (e) {
      if (frame) cancelAnimationFrame(frame);
      draw();
      reply.el.classList.add('failed');
      reply.body.append(h('span', { class: 'muted' }, out ? ' …' : '(failed)'));
      ctx.error(messageOf(e));
      throw e;
    } finally {
      reply.el.classList.remove('streaming');
      ctx.setBusy(false);
    }
  }

  function submit(): void {
    const text = input.value;
    if (!text.trim() || ctx.busy || !ctx.model) return;
    let samp: Partial<Sampling>;
    try { samp = sampling(); } catch (e) { ctx.error(messageOf(e)); settings.open = true; return; }
    input.value = '';
    autosize();
    void run(mode.value === 'complete' ? 'complete' : 'chat', text, samp).catch(() => undefined);
  }

  function autosize(): void {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  input.oninput = autosize;
  input.onkeydown = (e) => { if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); } };
  send.onclick = submit;
  stop.onclick = () => ctx.engine.stop();
  newChat.onclick = () => {
    clear(log);
    turns.length = 0;
    stats.textContent = '';
    if (ctx.model) void ctx.engine.request({ type: 'reset-chat', system: system.value }).catch((e) => ctx.error(messageOf(e)));
  };
  system.onchange = () => newChat.click();

  const el = h('section', { class: 'view chat-view' },
    h('div', { class: 'chat-top' }, modelLine, newChat),
    settings,
    h('div', { class: 'log-wrap' }, empty, log),
    h('div', { class: 'composer' }, input, send, stop),
    stats,
  );

  function refresh(): void {
    const m = ctx.model;
    empty.hidden = m !== null;
    log.hidden = m === null;
    input.disabled = m === null;
    send.hidden = ctx.busy;
    stop.hidden = !ctx.busy;
    send.disabled = m === null;
    clear(modelLine);
    if (m) {
      modelLine.append(h('strong', null, m.name), h('span', { class: 'muted' }, ` · ${m.describe}${m.instruct ? ' · -Instruct template' : ''}`));
      if (m !== shown) {
        // A new model: base models continue text, -Instruct ones chat greedily as Apple's cards do.
        shown = m;
        clear(log);
        turns.length = 0;
        stats.textContent = '';
        mode.value = m.instruct ? 'chat' : 'complete';
        if (m.instruct) { temperature.value = '0'; repPen.value = '1.2'; }
      }
    } else modelLine.append(h('span', { class: 'muted' }, 'No model loaded'));
  }
  ctx.onChange(refresh);
  refresh();

  return { el, complete: (prompt, samp) => run('complete', prompt, samp) };
}
