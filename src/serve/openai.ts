// OpenAI request bodies (chat/completions, completions) to engine inputs, validated field by field
// so a bad request gets a 400 that names the field. Sampling fields follow OpenAI, plus the llama.cpp
// extensions top_k, min_p, repeat_penalty (alias repetition_penalty), ignore_eos. Defaults follow
// llama-server (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05), with repetition penalty 1.2 for
// -Instruct models as Apple recommends. Unknown fields are ignored, as OpenAI clients send many.

import type { ChatMessage } from '../chat/template.js';
import type { EngineOptions } from './engine.js';

/** A client error: becomes an OpenAI-style error JSON with this HTTP status. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly type = status === 401 ? 'authentication_error' : status === 404 ? 'not_found_error'
    : status === 503 ? 'unavailable_error' : status >= 500 ? 'server_error' : 'invalid_request_error') {
    super(message);
  }
}

const bad = (m: string): never => { throw new HttpError(400, m); };

type Body = Record<string, unknown>;

function num(b: Body, key: string, lo: number, hi: number, opts: { int?: boolean; loOpen?: boolean } = {}): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(`"${key}" must be a number`);
  const n = v as number;
  if (opts.int && !Number.isInteger(n)) bad(`"${key}" must be an integer`);
  if ((opts.loOpen ? n <= lo : n < lo) || n > hi) bad(`"${key}" must be in ${opts.loOpen ? '(' : '['}${lo}, ${hi}], got ${n}`);
  return n;
}

function bool(b: Body, key: string): boolean | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') bad(`"${key}" must be true or false`);
  return v as boolean;
}

export interface SamplingDefaults { repetitionPenalty: number; }

export interface ParsedCommon {
  options: EngineOptions;
  stream: boolean;
  includeUsage: boolean;
}

function parseLogitBias(v: unknown, vocab: number): Record<number, number> | undefined {
  if (v === undefined || v === null) return undefined;
  const out: Record<number, number> = {};
  const put = (k: unknown, b: unknown) => {
    const id = typeof k === 'string' && /^\d+$/.test(k) ? Number(k) : k;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocab) bad(`"logit_bias": token id ${JSON.stringify(k)} is outside the vocabulary [0, ${vocab})`);
    // llama.cpp: false bans the token.
    if (b === false) { out[id as number] = -Infinity; return; }
    if (typeof b !== 'number' || !Number.isFinite(b) || b < -100 || b > 100) bad(`"logit_bias" values must be numbers in [-100, 100] (or false), got ${JSON.stringify(b)} for ${id}`);
    out[id as number] = b as number;
  };
  if (Array.isArray(v)) {
    for (const e of v) {
      if (!Array.isArray(e) || e.length !== 2) bad('"logit_bias" as an array must hold [token_id, bias] pairs');
      put(e[0], e[1]);
    }
  } else if (typeof v === 'object') {
    for (const [k, b] of Object.entries(v as Body)) put(k, b);
  } else bad('"logit_bias" must be an object {"token_id": bias}');
  return out;
}

/** Fields shared by both endpoints. `room` = tokens left in the context after the prompt. */
export function parseCommon(b: Body, vocab: number, defaults: SamplingDefaults): ParsedCommon {
  if (b.n !== undefined && b.n !== null && b.n !== 1) bad('"n" must be 1 (one choice per request)');
  const maxRaw = b.max_completion_tokens ?? b.max_tokens ?? b.n_predict;
  let maxTokens: number | undefined;
  if (maxRaw !== undefined && maxRaw !== null) {
    if (typeof maxRaw !== 'number' || !Number.isInteger(maxRaw) || maxRaw < -1) bad('"max_tokens" must be an integer >= 0 (or -1 for no limit)');
    maxTokens = maxRaw === -1 ? undefined : (maxRaw as number);
  }
  let stop: string[] | undefined;
  if (b.stop !== undefined && b.stop !== null) {
    const s = typeof b.stop === 'string' ? [b.stop] : b.stop;
    if (!Array.isArray(s) || s.some((x) => typeof x !== 'string')) bad('"stop" must be a string or an array of strings');
    stop = (s as string[]).filter((x) => x.length > 0);
  }
  let seed = num(b, 'seed', -1, Number.MAX_SAFE_INTEGER, { int: true });
  if (seed === -1) seed = undefined;
  if (seed !== undefined) seed = seed % 2 ** 32;
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== 'object' || Array.isArray(so))) bad('"stream_options" must be an object');
  const rf = b.response_format as { type?: unknown } | undefined | null;
  if (rf && rf.type !== undefined && rf.type !== 'text') bad(`"response_format" type ${JSON.stringify(rf.type)} is not supported (only "text")`);
  if (Array.isArray(b.tools) && b.tools.length > 0) bad('"tools" (function calling) is not supported by this server');
  if (b.logprobs === true) bad('"logprobs" is not supported by this server');
  const rp = num(b, 'repeat_penalty', 0, 10, { loOpen: true }) ?? num(b, 'repetition_penalty', 0, 10, { loOpen: true });
  return {
    stream: bool(b, 'stream') ?? false,
    includeUsage: (so as { include_usage?: unknown } | undefined)?.include_usage === true,
    options: {
      maxTokens, stop, seed,
      temperature: num(b, 'temperature', 0, 2) ?? 0.8,
      topP: num(b, 'top_p', 0, 1, { loOpen: true }) ?? 0.95,
      topK: num(b, 'top_k', 0, vocab, { int: true }) ?? 40,
      minP: num(b, 'min_p', 0, 1) ?? 0.05,
      presencePenalty: num(b, 'presence_penalty', -2, 2),
      frequencyPenalty: num(b, 'frequency_penalty', -2, 2),
      repetitionPenalty: rp ?? defaults.repetitionPenalty,
      logitBias: parseLogitBias(b.logit_bias, vocab),
      ignoreEos: bool(b, 'ignore_eos'),
    },
  };
}

function contentText(c: unknown, i: number, role: unknown): string {
  if (typeof c === 'string') return c;
  // OpenAI allows a null content only on assistant messages (those that carry tool calls instead).
  if (c === undefined) bad(`messages[${i}].content is required`);
  if (c === null) return role === 'assistant' ? '' : bad(`messages[${i}].content must be a string, not null`);
  if (Array.isArray(c)) {
    return c.map((p, k) => {
      const part = p as { type?: unknown; text?: unknown };
      if (!part || part.type !== 'text' || typeof part.text !== 'string') bad(`messages[${i}].content[${k}]: only {"type": "text", "text": ...} parts are supported`);
      return part.text as string;
    }).join('');
  }
  return bad(`messages[${i}].content must be a string or an array of text parts`);
}

export function parseMessages(b: Body): ChatMessage[] {
  const ms = b.messages;
  if (!Array.isArray(ms) || ms.length === 0) bad('"messages" must be a non-empty array');
  return (ms as unknown[]).map((m, i) => {
    if (!m || typeof m !== 'object') bad(`messages[${i}] must be an object {role, content}`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer') {
      bad(`messages[${i}].role must be "system", "user" or "assistant", got ${JSON.stringify(role)}`);
    }
    return { role: role === 'developer' ? 'system' : (role as string), content: contentText(content, i, role) };
  });
}

/** A completions prompt: a string, or token ids; a one-element array of either is accepted too. */
export function parsePrompt(b: Body): string | number[] {
  let p = b.prompt;
  if (Array.isArray(p) && p.length === 1 && (typeof p[0] === 'string' || Array.isArray(p[0]))) p = p[0];
  if (typeof p === 'string') return p;
  if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number')) return p as number[];
  if (Array.isArray(p) && p.length > 1) bad('"prompt": only one prompt per request is supported');
  return bad('"prompt" must be a string or an array of token ids');
}
