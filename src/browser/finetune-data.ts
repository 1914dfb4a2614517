// The page's training data as token windows: what every in-page trainer (full model, or an adapter)
// feeds its steps. Loss is taken where a model should learn to write:
//   text      every token; paragraphs (blank-line separated) each start with BOS and end with EOS,
//             and the stream is cut into windows of `sequenceLength` predictions;
//   jsonl     {"text"} as text; {"prompt", "completion"}: BOS + prompt + completion + EOS with loss on
//             the completion and the EOS only (TRL's completion-only loss);
//   chat      {"messages"} rendered with the model's chat template, loss on each assistant reply as
//             the template writes it, up to and including its EOS, nothing else.
// A record longer than the window is cut at the window (its tail is dropped) rather than split, so
// that a reply is never learnt without its prompt.

import { OpenELMError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { encodeChatText } from '../chat/tokenize.js';
import type { ChatMessage, ChatTemplate } from '../chat/template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { checkFineTuneData, type FineTuneData } from './finetune.js';

/** Inputs and targets equal to this are padding: skipped by the loss, embedded as zeros. */
export const PAD = -100;

/** One training row: ids and, per position, whether predicting the next token counts. */
interface Example { ids: number[]; learn: boolean[]; }

export interface TrainingWindows {
  /** Rows of T inputs and T targets (PAD where there is nothing). */
  rows: { inputs: Int32Array; targets: Int32Array; tokens: number }[];
  /** Tokens per row: the longest row, at most the requested sequence length. */
  T: number;
  /** Examples the data gave and tokens that count in the loss. */
  examples: number;
  tokens: number;
}

function fromPromptCompletion(tok: Tokenizer, prompt: string, completion: string): Example {
  const p = tok.encode(prompt, { bos: true });
  const c = tok.encode(completion, { bos: false });
  const ids = [...p, ...c, tok.eosId];
  return { ids, learn: ids.map((_, i) => i >= p.length) };
}

function fromChat(tok: Tokenizer, template: ChatTemplate, messages: ChatMessage[], line: number): Example {
  const enc = (m: readonly ChatMessage[], gen: boolean) => encodeChatText(tok, template.render(m, { addGenerationPrompt: gen }), template);
  const ids = enc(messages, false);
  const learn = ids.map(() => false);
  let spans = 0;
  messages.forEach((m, k) => {
    if (m.role !== 'assistant') return;
    // The reply is what the template adds between the conversation so far (with the assistant
    // header) and the conversation including the reply.
    const start = enc(messages.slice(0, k), true).length;
    let end = Math.min(enc(messages.slice(0, k + 1), false).length, ids.length);
    // Up to the reply's EOS: what the template writes after it (a newline) is never generated.
    const eos = ids.lastIndexOf(tok.eosId, end - 1);
    if (eos >= start) end = eos + 1;
    for (let i = start; i < end; i++) learn[i] = true;
    if (end > start) spans++;
  });
  if (!spans) throw new OpenELMError('finetune', `line ${line}: a chat example needs at least one "assistant" message to learn from`);
  return { ids, learn };
}

function examplesOf(tok: Tokenizer, template: ChatTemplate, d: FineTuneData): Example[] {
  const text = (s: string): Example => {
    const ids = [...tok.encode(s, { bos: true }), tok.eosId];
    return { ids, learn: ids.map(() => true) };
  };
  if (d.format === 'text') return d.content.split(/\n\s*\n/).filter((p) => p.trim()).map((p) => text(p.trim()));
  const out: Example[] = [];
  d.content.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const r = JSON.parse(line) as Record<string, unknown>;
    if (d.format === 'chat') out.push(fromChat(tok, template, r.messages as ChatMessage[], i + 1));
    else if (typeof r.text === 'string') out.push(text(r.text));
    else out.push(fromPromptCompletion(tok, r.prompt as string, r.completion as string));
  });
  return out;
}

/** A row from ids[from .. from+n] (n+1 ids give n predictions). */
function row(ex: Example, from: number, n: number, T: number) {
  const inputs = new Int32Array(T).fill(PAD), targets = new Int32Array(T).fill(PAD);
  let tokens = 0;
  for (let t = 0; t < n; t++) {
    inputs[t] = ex.ids[from + t];
    if (ex.learn[from + t + 1]) { targets[t] = ex.ids[from + t + 1]; tokens++; }
  }
  return { inputs, targets, tokens };
}

/** Tokenize the page's data into training rows of at most `sequenceLength` tokens. */
export function trainingWindows(tok: Tokenizer, template: ChatTemplate, d: FineTuneData, sequenceLength: number): TrainingWindows {
  const { examples } = checkFineTuneData(d);
  const list = examplesOf(tok, template, d);
  for (const ex of list) {
    const bad = ex.ids.find((id) => id < 0 || id >= tok.vocabSize);
    if (bad !== undefined) throw new OpenELMError('finetune', `token id ${bad} is outside the tokenizer's vocabulary`);
  }
  const S = sequenceLength;
  const pieces: { ex: Example; from: number; n: number }[] = [];
  if (d.format === 'text') {
    // One stream, cut into windows of S predictions (S + 1 ids, overlapping by one).
    const all: Example = { ids: list.flatMap((e) => e.ids), learn: list.flatMap((e) => e.learn) };
    for (let from = 0; from + 1 < all.ids.length; from += S) pieces.push({ ex: all, from, n: Math.min(S, all.ids.length - 1 - from) });
  } else {
    for (const ex of list) if (ex.ids.length > 1) pieces.push({ ex, from: 0, n: Math.min(S, ex.ids.length - 1) });
  }
  const T = Math.max(1, ...pieces.map((p) => p.n));
  const rows = pieces.map((p) => row(p.ex, p.from, p.n, T)).filter((r) => r.tokens > 0);
  if (!rows.length) throw new OpenELMError('finetune', 'the training data gives no tokens to learn from (a chat example needs an assistant reply; a record needs a completion)');
  return { rows, T, examples, tokens: rows.reduce((s, r) => s + r.tokens, 0) };
}

/** Batches of B rows, drawn without replacement in a seeded order that is reshuffled every epoch. */
export class WindowSampler {
  private order: number[] = [];
  private at = 0;
  private readonly rng: Rng;

  constructor(private readonly w: TrainingWindows, seed: number) { this.rng = new Rng(seed); }

  next(B: number): { inputs: Int32Array; targets: Int32Array; tokens: number } {
    const T = this.w.T, inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
    let tokens = 0;
    for (let b = 0; b < B; b++) {
      if (this.at >= this.order.length) this.shuffle();
      const r = this.w.rows[this.order[this.at++]];
      inputs.set(r.inputs, b * T);
      targets.set(r.targets, b * T);
      tokens += r.tokens;
    }
    return { inputs, targets, tokens };
  }

  private shuffle(): void {
    const o = this.w.rows.map((_, i) => i);
    for (let i = o.length - 1; i > 0; i--) { const j = this.rng.int(i + 1); [o[i], o[j]] = [o[j], o[i]]; }
    this.order = o;
    this.at = 0;
  }
}
