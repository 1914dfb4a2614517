// One JSONL line of instruction-tuning data → token ids and what the loss sees.
//
// SFT, detected per line (first match): `messages` (a chat rendered with the model's template; the
// loss covers each assistant message's content and the `</s>` closing it), `prompt` + `completion`
// (BOS + enc(prompt) + enc(completion) + EOS, each string encoded on its own; the loss covers the
// completion and EOS), `text` (BOS + enc(text) + EOS, all of it). `mask_prompt: false` puts every
// token but the BOS under the loss. Rows longer than max_length keep their start (TRL's SFT
// truncation); a row left with nothing to train on is dropped.
//
// DPO: `{prompt, chosen, rejected}` strings (tokenized as SFT's prompt/completion), or `chosen` and
// `rejected` as message lists whose last message is the assistant's (the UltraFeedback binarized
// layout: the prompt is the shared messages before it, rendered with the template). Length rules
// are TRL 0.8's DPOTrainer.tokenize_row (docs/instruction-tuning.md): a prompt longer than
// max_prompt_length drops the pair; when prompt + the longer completion exceed max_length, both
// completions are cut to max_length − max_prompt_length tokens.

import type { ChatMessage, ChatTemplate } from '../../chat/template.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';
import { ExampleError, assistantSpans, parseMessages } from './chat-spans.js';

export type SftKind = 'messages' | 'prompt_completion' | 'text';

export interface SftExample {
  kind: SftKind;
  /** BOS first. */
  ids: Int32Array;
  /** trained[i] = 1 when ids[i] is a loss target (never the BOS at 0). */
  trained: Uint8Array;
  /** The row was cut to max_length. */
  truncated: boolean;
}

export interface DpoPair {
  /** BOS + prompt. */
  prompt: Int32Array;
  /** Completion ids (EOS last unless truncated). */
  chosen: Int32Array;
  rejected: Int32Array;
  truncated: boolean;
  /** Rendered with the chat template (message lists) or taken as plain strings. */
  chat: boolean;
}

/** A pair or example that is well-formed but cannot be used at these lengths: dropped and counted. */
export class TooLongError extends Error {}

export interface InstructTokenizing {
  tok: Tokenizer;
  template: ChatTemplate;
  maxLength: number;
}

type Obj = Record<string, unknown>;

export function asObject(v: unknown): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new ExampleError('not a JSON object');
  return v as Obj;
}

function str(o: Obj, key: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ExampleError(v === undefined ? `no "${key}" field` : `"${key}" is not a string`);
  return v;
}

function nonEmpty(s: string, what: string): string {
  if (s.trim() === '') throw new ExampleError(`empty ${what}`, 'empty');
  return s;
}

// ------------------------------------------------------------------------------------------ SFT

export function sftKind(o: Obj): SftKind {
  if (o.messages !== undefined) return 'messages';
  if (o.prompt !== undefined || o.completion !== undefined) return 'prompt_completion';
  if (o.text !== undefined) return 'text';
  throw new ExampleError('no "messages", "prompt"/"completion" or "text" field');
}

/** Tokenize one SFT example; throws ExampleError (skip and count) or TooLongError (drop and count). */
export function tokenizeSft(line: unknown, t: InstructTokenizing & { maskPrompt: boolean }): SftExample {
  const o = asObject(line);
  const kind = sftKind(o);
  let ids: number[];
  const mark: [number, number][] = [];
  if (kind === 'messages') {
    const msgs = parseMessages(o.messages, 'messages');
    if (t.maskPrompt && !msgs.some((m) => m.role === 'assistant')) throw new ExampleError('no assistant message to train on');
    const s = assistantSpans(t.tok, t.template, msgs);
    ids = s.ids;
    mark.push(...(t.maskPrompt ? s.spans : [[1, ids.length] as [number, number]]));
  } else if (kind === 'prompt_completion') {
    const prompt = str(o, 'prompt'), completion = nonEmpty(str(o, 'completion'), 'completion');
    const p = t.tok.encode(prompt), c = t.tok.encode(completion);
    ids = [t.tok.bosId, ...p, ...c, t.tok.eosId];
    mark.push([t.maskPrompt ? 1 + p.length : 1, ids.length]);
  } else {
    const text = nonEmpty(str(o, 'text'), 'text');
    ids = [t.tok.bosId, ...t.tok.encode(text), t.tok.eosId];
    mark.push([1, ids.length]);
  }
  const n = Math.min(ids.length, t.maxLength);
  const trained = new Uint8Array(n);
  let count = 0;
  for (const [a, b] of mark) for (let i = Math.max(a, 1); i < Math.min(b, n); i++) { if (!trained[i]) count++; trained[i] = 1; }
  if (count === 0) throw new TooLongError(`nothing to train on within max_length ${t.maxLength} (the prompt takes ${mark[0][0]} tokens)`);
  return { kind, ids: Int32Array.from(ids.slice(0, n)), trained, truncated: n < ids.length };
}

// ------------------------------------------------------------------------------------------ DPO

function sameMessages(a: readonly ChatMessage[], b: readonly ChatMessage[]): boolean {
  return a.length === b.length && a.every((m, i) => m.role === b[i].role && m.content === b[i].content);
}

function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/**
 * Prompt and completions of a message-list pair: each conversation (prompt + its last assistant
 * message) is rendered and tokenized whole, and the completion is that message's span (content and
 * `</s>`), so the prompt ends with the template's assistant header exactly as at inference.
 */
function chatPair(t: InstructTokenizing, promptMsgs: ChatMessage[], chosen: ChatMessage, rejected: ChatMessage): { prompt: number[]; chosen: number[]; rejected: number[] } {
  const c = assistantSpans(t.tok, t.template, [...promptMsgs, chosen]);
  const r = assistantSpans(t.tok, t.template, [...promptMsgs, rejected]);
  const [cs, ce] = c.spans[c.spans.length - 1], [rs, re] = r.spans[r.spans.length - 1];
  // Identical prompts tokenize identically up to a token merged across the prompt's end.
  const s = Math.min(cs, rs, commonPrefixLength(c.ids, r.ids));
  return { prompt: c.ids.slice(0, s), chosen: c.ids.slice(s, ce), rejected: r.ids.slice(s, re) };
}

function lastAssistant(msgs: ChatMessage[], field: string): ChatMessage {
  const m = msgs[msgs.length - 1];
  if (m.role !== 'assistant') throw new ExampleError(`the last message of "${field}" must be the assistant's, got "${m.role}"`);
  if (m.content.trim() === '') throw new ExampleError(`empty ${field} completion`, 'empty');
  return m;
}

/** Tokenize one preference pair; throws ExampleError (skip and count) or TooLongError (drop and count). */
export function tokenizeDpo(line: unknown, t: InstructTokenizing & { maxPromptLength: number }): DpoPair {
  const o = asObject(line);
  for (const k of ['chosen', 'rejected']) if (o[k] === undefined) throw new ExampleError(`no "${k}" field`);
  const listC = Array.isArray(o.chosen), listR = Array.isArray(o.rejected);
  if (listC !== listR) throw new ExampleError('"chosen" and "rejected" must both be strings or both be message lists');
  let ids: { prompt: number[]; chosen: number[]; rejected: number[] };
  let chat = true;
  if (Array.isArray(o.prompt)) {
    // {prompt: [messages], chosen/rejected: [one assistant message] or strings}
    const promptMsgs = parseMessages(o.prompt, 'prompt');
    const completion = (k: 'chosen' | 'rejected'): ChatMessage => {
      if (typeof o[k] === 'string') return { role: 'assistant', content: nonEmpty(o[k] as string, `${k} completion`) };
      const msgs = parseMessages(o[k], k);
      if (msgs.length !== 1) throw new ExampleError(`with a message-list "prompt", "${k}" must hold one assistant message (got ${msgs.length})`);
      return lastAssistant(msgs, k);
    };
    ids = chatPair(t, promptMsgs, completion('chosen'), completion('rejected'));
  } else if (listC) {
    const c = parseMessages(o.chosen, 'chosen'), r = parseMessages(o.rejected, 'rejected');
    const cm = lastAssistant(c, 'chosen'), rm = lastAssistant(r, 'rejected');
    let promptMsgs = c.slice(0, -1);
    if (!sameMessages(promptMsgs, r.slice(0, -1))) throw new ExampleError('"chosen" and "rejected" differ before their last message (they must share the prompt)');
    if (promptMsgs.length === 0) {
      if (typeof o.prompt !== 'string' || o.prompt.trim() === '') throw new ExampleError('no prompt: "chosen" holds only the answer and there is no string "prompt"');
      promptMsgs = [{ role: 'user', content: o.prompt }];
    }
    ids = chatPair(t, promptMsgs, cm, rm);
  } else {
    chat = false;
    const prompt = str(o, 'prompt');
    const chosen = nonEmpty(str(o, 'chosen'), 'chosen completion'), rejected = nonEmpty(str(o, 'rejected'), 'rejected completion');
    ids = {
      prompt: [t.tok.bosId, ...t.tok.encode(prompt)],
      chosen: [...t.tok.encode(chosen), t.tok.eosId],
      rejected: [...t.tok.encode(rejected), t.tok.eosId],
    };
  }
  return truncatePair(ids, t.maxLength, t.maxPromptLength, chat);
}

/** TRL 0.8's length rules, with a too-long prompt dropping the pair instead of being cut. */
export function truncatePair(ids: { prompt: number[]; chosen: number[]; rejected: number[] }, maxLength: number, maxPromptLength: number, chat: boolean): DpoPair {
  if (ids.prompt.length > maxPromptLength) throw new TooLongError(`the prompt has ${ids.prompt.length} tokens, more than max_prompt_length ${maxPromptLength}`);
  const longer = Math.max(ids.chosen.length, ids.rejected.length);
  let chosen = ids.chosen, rejected = ids.rejected, truncated = false;
  if (ids.prompt.length + longer > maxLength) {
    const keep = maxLength - maxPromptLength;
    truncated = chosen.length > keep || rejected.length > keep;
    chosen = chosen.slice(0, keep);
    rejected = rejected.slice(0, keep);
  }
  return { prompt: Int32Array.from(ids.prompt), chosen: Int32Array.from(chosen), rejected: Int32Array.from(rejected), truncated, chat };
}
