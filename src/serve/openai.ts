// OpenAI request bodies (chat/completions, completions) to engine inputs, validated field by field
// so a bad request gets a 400 that names the field. Sampling fields follow OpenAI, plus the llama.cpp
// extensions top_k, min_p, repeat_penalty (alias repetition_penalty), ignore_eos, and llama.cpp's
// `grammar` and `json_schema` beside OpenAI's `response_format`. Defaults follow llama-server
// (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05), with repetition penalty 1.2 for -Instruct
// models as Apple recommends. Unknown fields are ignored, as OpenAI clients send many.

import type { ConstraintSpec } from '../generate/constrain/cache.js';
import type { EngineOptions } from './engine.js';
import type { RequestMessage, ToolCall, ToolChoice, ToolDef, ToolsRequest } from './tools.js';

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
  /** Sampling and stopping; the constraint and logprobs are set per choice. */
  options: EngineOptions;
  stream: boolean;
  includeUsage: boolean;
  /** Choices per prompt. */
  n: number;
  /** From response_format, grammar or json_schema. */
  constraint?: ConstraintSpec;
  /** Alternatives per token when logprobs were asked for (0: the token's own only); undefined: none. */
  logprobs?: number;
  /** Completions: the prompt goes in front of the text (and its tokens in front of the logprobs). */
  echo: boolean;
}

/** Most choices one request may ask for (each is a sequence in the batch). */
export const MAX_N = 16;
/** Most alternatives per token (OpenAI allows 20 on chat, vLLM as many on completions). */
export const MAX_TOP_LOGPROBS = 20;

const isObject = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);

/** response_format (OpenAI), grammar and json_schema (llama.cpp): at most one constraint. */
function parseConstraint(b: Body): ConstraintSpec | undefined {
  const found: ConstraintSpec[] = [];
  const rf = b.response_format;
  if (rf !== undefined && rf !== null) {
    if (!isObject(rf)) bad('"response_format" must be an object {"type": ...}');
    const r = rf as Body;
    if (r.type === 'json_object') found.push({ kind: 'json_object' });
    else if (r.type === 'json_schema') {
      const js = r.json_schema;
      if (!isObject(js)) bad('"response_format.json_schema" must be an object {"name", "schema", "strict"}');
      const j = js as Body;
      if (j.name !== undefined && (typeof j.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(j.name))) bad('"response_format.json_schema.name" must be 1-64 letters, digits, "_" or "-"');
      if (j.strict !== undefined && j.strict !== null && typeof j.strict !== 'boolean') bad('"response_format.json_schema.strict" must be true or false');
      if (j.schema === undefined || j.schema === null) bad('"response_format.json_schema.schema" is required (the JSON schema of the reply)');
      found.push({ kind: 'json_schema', schema: j.schema });
    } else if (r.type !== 'text' && r.type !== undefined) {
      bad(`"response_format" type ${JSON.stringify(r.type)} is not supported ("text", "json_object" or "json_schema")`);
    }
  }
  if (b.grammar !== undefined && b.grammar !== null && b.grammar !== '') {
    if (typeof b.grammar !== 'string') bad('"grammar" must be GBNF text (a string)');
    found.push({ kind: 'grammar', text: b.grammar as string, source: 'grammar' });
  }
  if (b.json_schema !== undefined && b.json_schema !== null) found.push({ kind: 'json_schema', schema: b.json_schema });
  if (found.length > 1) bad('give one of "response_format" (json_object or json_schema), "grammar" and "json_schema"');
  return found[0];
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

/** Fields shared by both endpoints. */
export function parseCommon(b: Body, vocab: number, defaults: SamplingDefaults, kind: 'chat' | 'text' = 'chat'): ParsedCommon {
  const n = num(b, 'n', 1, MAX_N, { int: true }) ?? 1;
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
  let logprobs: number | undefined;
  let echo = false;
  if (kind === 'chat') {
    // Chat: logprobs is a switch, top_logprobs the number of alternatives.
    const on = bool(b, 'logprobs') ?? false;
    const top = num(b, 'top_logprobs', 0, MAX_TOP_LOGPROBS, { int: true });
    if (top !== undefined && !on) bad('"top_logprobs" needs "logprobs": true');
    if (on) logprobs = top ?? 0;
  } else {
    // Completions: logprobs is the number of alternatives; null or absent means none.
    if (b.logprobs === true) logprobs = 0;
    else if (b.logprobs !== false) logprobs = num(b, 'logprobs', 0, MAX_TOP_LOGPROBS, { int: true });
    echo = bool(b, 'echo') ?? false;
  }
  const rp = num(b, 'repeat_penalty', 0, 10, { loOpen: true }) ?? num(b, 'repetition_penalty', 0, 10, { loOpen: true });
  return {
    stream: bool(b, 'stream') ?? false,
    includeUsage: (so as { include_usage?: unknown } | undefined)?.include_usage === true,
    n, logprobs, echo,
    constraint: parseConstraint(b),
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

const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** tools, tool_choice and parallel_tool_calls of a chat request; undefined without tools. */
export function parseTools(b: Body): ToolsRequest | undefined {
  if (b.functions !== undefined || b.function_call !== undefined) bad('"functions" and "function_call" are the deprecated form; send "tools" and "tool_choice"');
  const raw = b.tools;
  const choice = b.tool_choice;
  if (raw === undefined || raw === null || (Array.isArray(raw) && raw.length === 0)) {
    if (choice !== undefined && choice !== null && choice !== 'none' && choice !== 'auto') bad('"tool_choice" needs "tools"');
    return undefined;
  }
  if (!Array.isArray(raw)) bad('"tools" must be an array of {"type": "function", "function": {...}}');
  const tools: ToolDef[] = (raw as unknown[]).map((t, i) => {
    const at = `tools[${i}]`;
    if (!isObject(t) || t.type !== 'function' || !isObject(t.function)) bad(`${at} must be {"type": "function", "function": {"name", "description", "parameters"}}`);
    const f = (t as Body).function as Body;
    if (typeof f.name !== 'string' || !FUNCTION_NAME.test(f.name)) bad(`${at}.function.name must be 1-64 letters, digits, "_" or "-"`);
    if (f.description !== undefined && f.description !== null && typeof f.description !== 'string') bad(`${at}.function.description must be a string`);
    if (f.parameters !== undefined && f.parameters !== null && !isObject(f.parameters)) bad(`${at}.function.parameters must be a JSON schema object`);
    // No parameters: a function that takes none.
    const parameters = (f.parameters as Body | undefined | null) ?? { type: 'object', properties: {} };
    return { name: f.name as string, ...(typeof f.description === 'string' ? { description: f.description } : {}), parameters };
  });
  const names = new Set<string>();
  for (const t of tools) { if (names.has(t.name)) bad(`"tools" names the function ${JSON.stringify(t.name)} twice`); names.add(t.name); }
  let c: ToolChoice = 'auto';
  if (choice === 'none' || choice === 'auto' || choice === 'required') c = choice;
  else if (isObject(choice)) {
    const name = isObject(choice.function) ? (choice.function as Body).name : undefined;
    if (choice.type !== 'function' || typeof name !== 'string') bad('"tool_choice" must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}');
    if (!names.has(name as string)) bad(`"tool_choice" names the function ${JSON.stringify(name)}, which is not in "tools"`);
    c = { name: name as string };
  } else if (choice !== undefined && choice !== null) bad('"tool_choice" must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}');
  return { tools, choice: c, parallel: bool(b, 'parallel_tool_calls') ?? false };
}

function contentText(c: unknown, i: number, role: unknown): string {
  if (typeof c === 'string') return c;
  // OpenAI allows a null or missing content only on assistant messages (those that carry tool calls instead).
  if ((c === null || c === undefined) && role === 'assistant') return '';
  if (c === undefined) bad(`messages[${i}].content is required`);
  if (c === null) bad(`messages[${i}].content must be a string, not null`);
  if (Array.isArray(c)) {
    return c.map((p, k) => {
      const part = p as { type?: unknown; text?: unknown };
      if (!part || part.type !== 'text' || typeof part.text !== 'string') bad(`messages[${i}].content[${k}]: only {"type": "text", "text": ...} parts are supported`);
      return part.text as string;
    }).join('');
  }
  return bad(`messages[${i}].content must be a string or an array of text parts`);
}

function parseToolCalls(v: unknown, i: number): ToolCall[] {
  if (!Array.isArray(v)) bad(`messages[${i}].tool_calls must be an array`);
  return (v as unknown[]).map((c, k) => {
    const at = `messages[${i}].tool_calls[${k}]`;
    if (!isObject(c) || !isObject(c.function) || typeof c.id !== 'string' || !c.id) bad(`${at} must be {"id", "type": "function", "function": {"name", "arguments"}}`);
    const f = (c as Body).function as Body;
    if (typeof f.name !== 'string') bad(`${at}.function.name must be a string`);
    const args = f.arguments === undefined || f.arguments === null ? '{}' : typeof f.arguments === 'string' ? f.arguments : JSON.stringify(f.arguments);
    return { id: (c as Body).id as string, type: 'function', function: { name: f.name as string, arguments: args } };
  });
}

export function parseMessages(b: Body): RequestMessage[] {
  const ms = b.messages;
  if (!Array.isArray(ms) || ms.length === 0) bad('"messages" must be a non-empty array');
  return (ms as unknown[]).map((m, i) => {
    if (!m || typeof m !== 'object') bad(`messages[${i}] must be an object {role, content}`);
    const { role, content, tool_calls: calls, tool_call_id: callId, name } = m as Body;
    if (role !== 'system' && role !== 'user' && role !== 'assistant' && role !== 'developer' && role !== 'tool') {
      bad(`messages[${i}].role must be "system", "user", "assistant" or "tool", got ${JSON.stringify(role)}`);
    }
    const out: RequestMessage = { role: role === 'developer' ? 'system' : (role as string), content: contentText(content, i, role) };
    if (role === 'assistant' && calls !== undefined && calls !== null) {
      const tc = parseToolCalls(calls, i);
      if (tc.length) out.tool_calls = tc;
    }
    if (role === 'tool') {
      if (typeof callId !== 'string' || !callId) bad(`messages[${i}].tool_call_id is required on a tool message`);
      out.tool_call_id = callId as string;
    }
    if (typeof name === 'string') out.name = name;
    return out;
  });
}

/** A completions prompt: a string or token ids, or a list of them (one choice each). */
export function parsePrompts(b: Body): Array<string | number[]> {
  const p = b.prompt;
  const one = (x: unknown): x is string | number[] => typeof x === 'string' || (Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === 'number'));
  if (one(p)) return [p];
  if (Array.isArray(p) && p.length > 0 && p.every(one)) return p as Array<string | number[]>;
  return bad('"prompt" must be a string, an array of token ids, or a non-empty list of those');
}
