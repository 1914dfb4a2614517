// Tool calls (OpenAI `tools` / `tool_choice`) for models whose chat format has no tool syntax of
// its own, which is every OpenELM model: the reply is a JSON object in llama.cpp's "generic" tool
// format, enforced by a grammar,
//   {"tool_call": {"name": "get_weather", "arguments": {...}}}        one call
//   {"tool_calls": [{"name": ..., "arguments": {...}}, ...]}         parallel_tool_calls: true
//   {"response": "text for the user"}                                 tool_choice "auto" only
// (llama.cpp common/chat.cpp, common_chat_params_init_generic). The arguments follow the
// function's parameter schema. The earlier turns are shown to the model in the same shape, as
// minja's polyfills do for templates without tool support: an assistant turn with tool_calls is
// written as the JSON it would have generated, and a `tool` message becomes a user turn
// {"tool_response": {"name", "tool_call_id", "content"}}. The tools themselves are listed in the
// system message. A Jinja template that renders `tools` itself gets them (and the messages with
// their tool fields) as they are; only the one-line format instruction is added.

import type { ChatMessage, ChatTemplate } from '../chat/template.js';
import { HttpError } from './openai.js';

export interface ToolCall { id: string; type: 'function'; function: { name: string; arguments: string } }

/** A chat message as a request sends it: tool calls on assistant turns, the call id on tool turns. */
export interface RequestMessage extends ChatMessage {
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  name?: string;
}

export interface ToolDef { name: string; description?: string; parameters: Record<string, unknown> }
export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };
export interface ToolsRequest { tools: ToolDef[]; choice: ToolChoice; parallel: boolean }

const supportCache = new WeakMap<ChatTemplate, boolean>();
const PROBE = 'openelm_probe_tool_7f3a';

/** Whether a template renders `tools` itself (probed once: a tool's name shows up in the prompt). */
export function templateSupportsTools(t: ChatTemplate): boolean {
  let v = supportCache.get(t);
  if (v === undefined) {
    try {
      const probe = [{ type: 'function', function: { name: PROBE, description: 'probe', parameters: { type: 'object', properties: {} } } }];
      v = t.render([{ role: 'user', content: 'x' }], { addGenerationPrompt: true, tools: probe }).includes(PROBE);
    } catch {
      v = false;
    }
    supportCache.set(t, v);
  }
  return v;
}

function parseArgs(s: string): unknown {
  try { return JSON.parse(s); } catch { return s; }
}

/** An assistant turn's tool calls as the JSON the model writes for them. */
function callsText(calls: readonly ToolCall[]): string {
  const one = (c: ToolCall) => ({ name: c.function.name, arguments: parseArgs(c.function.arguments) });
  return JSON.stringify(calls.length === 1 ? { tool_call: one(calls[0]) } : { tool_calls: calls.map(one) });
}

function formatInstruction(req: ToolsRequest): string {
  const call = req.parallel ? '{"tool_calls": [{"name": ..., "arguments": {...}}]}' : '{"tool_call": {"name": ..., "arguments": {...}}}';
  if (req.choice === 'auto') return `Respond in JSON, either with ${call} to call tools, or with {"response": ...} to reply to the user.`;
  if (typeof req.choice === 'object') return `Respond in JSON with ${call} to call the tool ${req.choice.name}.`;
  return `Respond in JSON with ${call} to call tools.`;
}

function withSystem(messages: RequestMessage[], text: string): RequestMessage[] {
  if (messages[0]?.role === 'system') return [{ ...messages[0], content: `${messages[0].content}\n${text}` }, ...messages.slice(1)];
  return [{ role: 'system', content: text }, ...messages];
}

/** OpenAI's tool objects, for templates that render `tools`. */
function openaiTools(req: ToolsRequest): unknown[] {
  return req.tools.map((t) => ({ type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.parameters } }));
}

/**
 * The prompt text for a chat request. `tools` is what the reply may call (undefined, or with
 * choice "none": no tool instructions; earlier tool turns are still shown).
 */
export function renderChat(t: ChatTemplate, messages: readonly RequestMessage[], tools: ToolsRequest | undefined): string {
  const offered = tools && tools.choice !== 'none' ? tools : undefined;
  if (templateSupportsTools(t)) {
    const msgs = offered ? withSystem([...messages], formatInstruction(offered)) : [...messages];
    return t.render(msgs, { addGenerationPrompt: true, ...(tools ? { tools: openaiTools(tools) } : {}) });
  }
  const names = new Map<string, string>();
  let msgs: RequestMessage[] = messages.map((m) => {
    if (m.role === 'assistant' && m.tool_calls?.length) {
      for (const c of m.tool_calls) names.set(c.id, c.function.name);
      return { role: 'assistant', content: m.content ? `${m.content}\n${callsText(m.tool_calls)}` : callsText(m.tool_calls) };
    }
    if (m.role === 'tool') {
      const name = m.name ?? names.get(m.tool_call_id ?? '');
      return { role: 'user', content: JSON.stringify({ tool_response: { ...(name ? { name } : {}), tool_call_id: m.tool_call_id, content: m.content } }) };
    }
    return { role: m.role, content: m.content };
  });
  if (offered) {
    const list = offered.tools.map((x) => ({ name: x.name, ...(x.description ? { description: x.description } : {}), parameters: x.parameters }));
    msgs = withSystem(msgs, `You can call these tools:\n${JSON.stringify(list)}\n${formatInstruction(offered)}`);
  }
  return t.render(msgs, { addGenerationPrompt: true });
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A schema moved under `prefix` (a JSON pointer of the combined schema): its local `$ref`s are
 * rewritten to point into it there. Only schema positions are walked (not const/enum/default data).
 */
export function rebaseRefs(schema: unknown, prefix: string): unknown {
  if (!isObject(schema)) return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#')) out[k] = prefix + v.slice(1);
    else if ((k === 'properties' || k === '$defs' || k === 'definitions') && isObject(v)) out[k] = Object.fromEntries(Object.entries(v).map(([n, s]) => [n, rebaseRefs(s, prefix)]));
    else if ((k === 'items' || k === 'additionalProperties') && isObject(v)) out[k] = rebaseRefs(v, prefix);
    else if (k === 'anyOf' && Array.isArray(v)) out[k] = v.map((s) => rebaseRefs(s, prefix));
    else out[k] = v;
  }
  return out;
}

/**
 * The JSON schema a tool-calling reply follows. Each function's parameters (and a response schema)
 * go under `$defs` of the combined schema with their `$ref`s rebased, so schemas with their own
 * `$defs` keep working.
 */
export function toolReplySchema(req: ToolsRequest, responseSchema?: unknown): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  const tools = typeof req.choice === 'object' ? req.tools.filter((t) => t.name === (req.choice as { name: string }).name) : req.tools;
  const calls = tools.map((t) => {
    const key = `tool-${req.tools.indexOf(t)}`;
    defs[key] = rebaseRefs(t.parameters, `#/$defs/${key}`);
    return { type: 'object', properties: { name: { const: t.name }, arguments: { $ref: `#/$defs/${key}` } }, required: ['name', 'arguments'] };
  });
  const call = calls.length === 1 ? calls[0] : { anyOf: calls };
  const toolPart = req.parallel
    ? { type: 'object', properties: { tool_calls: { type: 'array', items: call, minItems: 1 } }, required: ['tool_calls'] }
    : { type: 'object', properties: { tool_call: call }, required: ['tool_call'] };
  if (req.choice !== 'auto') return { ...toolPart, $defs: defs };
  let response: unknown = { type: 'string' };
  if (responseSchema !== undefined) { defs.response = rebaseRefs(responseSchema, '#/$defs/response'); response = { $ref: '#/$defs/response' }; }
  return { anyOf: [toolPart, { type: 'object', properties: { response }, required: ['response'] }], $defs: defs };
}

export type ToolEvent =
  | { type: 'content'; text: string }
  | { type: 'call'; index: number; name: string }
  | { type: 'arguments'; index: number; text: string };

type Frame = { kind: 'obj'; key: string | null } | { kind: 'arr'; index: number };
const enum S { Value, KeyOrEnd, Key, Colon, ValueOrEnd, After, Str, Esc, Hex, Lit }

/**
 * Reads a reply in the generic tool format as it streams and reports what it holds: text of the
 * `response` (a string's characters decoded; any other value as its JSON text), each call's name
 * once it is complete, and the raw JSON text of each call's arguments as it comes. The grammar
 * guarantees valid JSON; text cut off by max_tokens just leaves the last part incomplete.
 */
export class ToolReplyScanner {
  private stack: Frame[] = [];
  private state = S.Value;
  private strTarget: 'key' | 'value' = 'value';
  private str = '';
  private hex = '';
  private capture: { depth: number; kind: 'content' | 'arguments'; index: number } | null = null;
  private decodeResponse = false;
  private calls = 0;
  private readonly events: ToolEvent[] = [];
  content = '';
  readonly toolCalls: Array<{ name: string; arguments: string }> = [];

  /** Feeds text; returns the events it completed (content and arguments pieces are merged per call). */
  push(text: string): ToolEvent[] {
    for (const ch of text) this.char(ch);
    const out: ToolEvent[] = [];
    for (const e of this.events.splice(0)) {
      const last = out[out.length - 1];
      if (last && last.type === e.type && e.type !== 'call' && (e.type === 'content' || (last as { index: number }).index === e.index)) (last as { text: string }).text += (e as { text: string }).text;
      else out.push(e);
    }
    return out;
  }

  private path(): Array<string | number | null> {
    return this.stack.map((f) => (f.kind === 'obj' ? f.key : f.index));
  }

  private emit(kind: 'content' | 'arguments', text: string): void {
    if (!text) return;
    if (kind === 'content') { this.content += text; this.events.push({ type: 'content', text }); return; }
    const index = this.calls - 1;
    if (index < 0) return;
    this.toolCalls[index].arguments += text;
    this.events.push({ type: 'arguments', index, text });
  }

  /** A value starts at the current path. */
  private valueStart(): void {
    if (this.capture) return;
    const p = this.path();
    const d = this.stack.length;
    if (d === 1 && p[0] === 'response') { this.capture = { depth: d, kind: 'content', index: 0 }; return; }
    const isArgs = (d === 2 && p[0] === 'tool_call' && p[1] === 'arguments') || (d === 3 && p[0] === 'tool_calls' && typeof p[1] === 'number' && p[2] === 'arguments');
    if (isArgs) this.capture = { depth: d, kind: 'arguments', index: this.calls - 1 };
  }

  /** The value at depth `d` (the stack length where it started) is complete. */
  private valueEnd(d: number): void {
    if (this.capture && this.capture.depth === d) this.capture = null;
  }

  private nameDone(name: string): void {
    const p = this.path();
    const isName = (p.length === 2 && p[0] === 'tool_call' && p[1] === 'name') || (p.length === 3 && p[0] === 'tool_calls' && p[2] === 'name');
    if (!isName) return;
    this.toolCalls.push({ name, arguments: '' });
    this.events.push({ type: 'call', index: this.calls++, name });
  }

  private raw(ch: string): void {
    if (this.capture && !this.decodeResponse) this.emit(this.capture.kind, ch);
  }

  private char(ch: string): void {
    switch (this.state) {
      case S.Value:
        if (ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r') { this.raw(ch); return; }
        this.valueStart();
        if (ch === '"' && this.capture?.kind === 'content' && this.capture.depth === this.stack.length) {
          // The response string's characters are the content, decoded.
          this.decodeResponse = true;
        } else this.raw(ch);
        if (ch === '{') { this.stack.push({ kind: 'obj', key: null }); this.state = S.KeyOrEnd; return; }
        if (ch === '[') { this.stack.push({ kind: 'arr', index: 0 }); this.state = S.ValueOrEnd; return; }
        if (ch === '"') { this.strTarget = 'value'; this.str = ''; this.state = S.Str; return; }
        this.state = S.Lit;
        return;
      case S.Lit:
        if (ch === ',' || ch === '}' || ch === ']' || ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r') {
          this.valueEnd(this.stack.length);
          this.state = S.After;
          this.char(ch);
          return;
        }
        this.raw(ch);
        return;
      case S.KeyOrEnd:
        this.raw(ch);
        if (ch === '}') { this.close(); return; }
        if (ch === '"') { this.strTarget = 'key'; this.str = ''; this.state = S.Str; }
        return;
      case S.Colon:
        this.raw(ch);
        if (ch === ':') this.state = S.Value;
        return;
      case S.ValueOrEnd:
        if (ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r') { this.raw(ch); return; }
        if (ch === ']') { this.raw(ch); this.close(); return; }
        this.state = S.Value;
        this.char(ch);
        return;
      case S.After:
        if (ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r') { this.raw(ch); return; }
        this.raw(ch);
        if (ch === ',') {
          const top = this.stack[this.stack.length - 1];
          if (top?.kind === 'arr') { top.index++; this.state = S.Value; } else this.state = S.KeyOrEnd;
          return;
        }
        if (ch === '}' || ch === ']') this.close();
        return;
      case S.Str:
        if (ch === '\\') { this.state = S.Esc; if (!this.decodeResponse) this.raw(ch); return; }
        if (ch === '"') { this.endString(); return; }
        this.str += ch;
        if (this.decodeResponse) this.emit('content', ch); else this.raw(ch);
        return;
      case S.Esc: {
        if (!this.decodeResponse) this.raw(ch);
        if (ch === 'u') { this.hex = ''; this.state = S.Hex; return; }
        const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', '/': '/', '\\': '\\', '"': '"' };
        const c = map[ch] ?? ch;
        this.str += c;
        if (this.decodeResponse) this.emit('content', c);
        this.state = S.Str;
        return;
      }
      case S.Hex:
        if (!this.decodeResponse) this.raw(ch);
        this.hex += ch;
        if (this.hex.length === 4) {
          const c = String.fromCharCode(parseInt(this.hex, 16));
          this.str += c;
          if (this.decodeResponse) this.emit('content', c);
          this.state = S.Str;
        }
        return;
    }
  }

  private endString(): void {
    if (this.strTarget === 'key') {
      this.raw('"');
      const top = this.stack[this.stack.length - 1];
      if (top?.kind === 'obj') top.key = this.str;
      this.state = S.Colon;
      return;
    }
    if (this.decodeResponse) this.decodeResponse = false; else this.raw('"');
    this.nameDone(this.str);
    this.valueEnd(this.stack.length);
    this.state = S.After;
  }

  private close(): void {
    this.stack.pop();
    this.valueEnd(this.stack.length);
    this.state = S.After;
  }
}

/** Checks tool messages against the calls made before them; returns nothing, throws a 400. */
export function checkToolMessages(messages: readonly RequestMessage[]): void {
  const ids = new Set<string>();
  messages.forEach((m, i) => {
    for (const c of m.tool_calls ?? []) ids.add(c.id);
    if (m.role === 'tool' && !ids.has(m.tool_call_id!)) {
      throw new HttpError(400, `messages[${i}].tool_call_id ${JSON.stringify(m.tool_call_id)} does not match a tool call of an earlier assistant message`);
    }
  });
}
