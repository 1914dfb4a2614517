// One choice of a chat or completions response, turned into OpenAI's wire objects as its tokens
// come: text (with the echoed prompt for completions), log-probabilities in the endpoint's shape,
// and tool calls read out of a generic-format reply (tools.ts). The same state serves a JSON
// response (everything at the end) and a stream (a delta per step).

import { randomUUID } from 'node:crypto';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { StreamChunk } from '../generate/generate.js';
import type { PromptLogprobs, TokenLogprob } from '../generate/logprobs.js';
import type { EngineResult } from './engine.js';
import { chatLogprobs, completionLogprobs, leadingSpaceDropped, OffsetTracker, type CompletionLogprobs } from './logprobs-wire.js';
import { ToolReplyScanner, type ToolEvent } from './tools.js';

export type Kind = 'chat' | 'text';

/** What a choice starts from: the prompt's ids and, for completions with echo, its text and scores. */
export interface ChoicePrompt {
  ids: number[];
  /** The prompt text as the client sent it (completions); undefined for token-id prompts. */
  text?: string;
  scored?: PromptLogprobs;
}

export interface ChoiceOptions {
  kind: Kind;
  echo: boolean;
  /** Logprobs were asked for. */
  logprobs: boolean;
  /** The reply is in the generic tool format. */
  tools: boolean;
}

export function newCallId(): string {
  return `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`;
}

export class ChoiceState {
  text = '';
  readonly ids: number[] = [];
  result?: EngineResult;
  private readonly entries: TokenLogprob[] = [];
  private pending: TokenLogprob[] = [];
  private pendingIds: number[] = [];
  private readonly offsets: OffsetTracker;
  private readonly scanner?: ToolReplyScanner;
  private readonly callIds: string[] = [];
  private spaceChecked = false;
  private readonly promptText: string;

  constructor(readonly index: number, private readonly tok: Tokenizer, readonly prompt: ChoicePrompt, private readonly o: ChoiceOptions) {
    if (o.tools) this.scanner = new ToolReplyScanner();
    this.promptText = o.echo ? prompt.text ?? tok.decode(prompt.ids) : '';
    this.offsets = new OffsetTracker(tok, 0, o.echo ? prompt.ids : []);
  }

  /** Completions with echo: the text and logprobs of the prompt come first. */
  echoPart(): { text: string; logprobs: CompletionLogprobs | null } {
    const p = this.prompt;
    if (!p.scored) return { text: this.promptText, logprobs: null };
    return { text: this.promptText, logprobs: completionLogprobs(this.tok, p.ids, p.scored.entries, offsetsOf(this.tok, p.ids)) };
  }

  /**
   * Takes one engine chunk; returns the text it adds (a continued prompt gets back the leading space
   * the first generated piece lost) and, for tool replies, the scanner's events.
   */
  push(c: StreamChunk): { text: string; events: ToolEvent[] } {
    for (const id of c.ids) { this.ids.push(id); this.pendingIds.push(id); }
    if (c.logprobs) for (const e of c.logprobs) { this.entries.push(e); this.pending.push(e); }
    let text = c.text;
    if (text && this.o.echo && !this.spaceChecked) {
      this.spaceChecked = true;
      if (leadingSpaceDropped(this.tok, this.ids)) text = ` ${text}`;
    }
    this.text += text;
    const events = this.scanner && text ? this.scanner.push(text) : [];
    return { text, events };
  }

  /** The logprobs not yet sent, in the endpoint's shape (null when none were asked for or none wait). */
  takeLogprobs(): CompletionLogprobs | { content: ReturnType<typeof chatLogprobs>['content'] } | null {
    if (!this.o.logprobs) return null;
    const ids = this.pendingIds, entries = this.pending;
    this.pendingIds = [];
    this.pending = [];
    if (this.o.kind === 'chat') return chatLogprobs(this.tok, entries.filter((e) => e.id !== this.tok.eosId));
    return completionLogprobs(this.tok, ids, entries, ids.map((id) => this.offsets.next(id)));
  }

  get hasPendingLogprobs(): boolean { return this.o.logprobs && this.pending.length > 0; }

  /** The id OpenAI clients use for tool call `index`. */
  callId(index: number): string {
    return (this.callIds[index] ??= newCallId());
  }

  get toolCalls(): Array<{ name: string; arguments: string }> { return this.scanner?.toolCalls ?? []; }

  finishReason(): 'stop' | 'length' | 'tool_calls' {
    const r = this.result!;
    if (r.finishReason === 'length') return 'length';
    return this.toolCalls.length ? 'tool_calls' : 'stop';
  }

  /** The non-streamed chat message. */
  message(): Record<string, unknown> {
    if (!this.scanner) return { role: 'assistant', content: this.text };
    const calls = this.toolCalls.map((c, i) => ({ id: this.callId(i), type: 'function', function: { name: c.name, arguments: c.arguments } }));
    return { role: 'assistant', content: calls.length ? (this.scanner.content || null) : this.scanner.content, ...(calls.length ? { tool_calls: calls } : {}) };
  }

  /** The non-streamed choice object. */
  choice(): Record<string, unknown> {
    const lp = this.takeLogprobs();
    if (this.o.kind === 'chat') return { index: this.index, message: this.message(), logprobs: lp, finish_reason: this.finishReason() };
    if (!this.o.echo) return { index: this.index, text: this.text, logprobs: lp, finish_reason: this.finishReason() };
    const e = this.echoPart();
    const gen = lp as CompletionLogprobs | null;
    const merged = e.logprobs && gen ? concatLogprobs(e.logprobs, gen) : gen ?? e.logprobs;
    return { index: this.index, text: e.text + this.text, logprobs: merged, finish_reason: this.finishReason() };
  }
}

function offsetsOf(tok: Tokenizer, ids: readonly number[]): number[] {
  const t = new OffsetTracker(tok);
  return ids.map((id) => t.next(id));
}

export function concatLogprobs(a: CompletionLogprobs, b: CompletionLogprobs): CompletionLogprobs {
  return {
    tokens: [...a.tokens, ...b.tokens], token_logprobs: [...a.token_logprobs, ...b.token_logprobs],
    top_logprobs: [...a.top_logprobs, ...b.top_logprobs], text_offset: [...a.text_offset, ...b.text_offset],
  };
}
