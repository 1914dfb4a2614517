// A multi-turn conversation that keeps its KV cache between turns.
//
// Each turn renders the whole conversation with the chat template, but only the tokens the cache
// does not already hold are prefilled. When the previous answer ended with EOS, the new prompt is the
// previous prompt + the answer's own token ids + the tokenized new text (the text after an EOS is a
// fresh tokenizer segment, so this equals tokenizing the whole rendering, except that the answer
// keeps the ids the model produced). Otherwise (a stop string, max tokens, an abort) the rendering
// is tokenized afresh and the longest common prefix with the cache is kept. When the conversation
// outgrows the context, the oldest turns are dropped (the system prompt stays) and the cache rebuilt.

import type { OpenELM } from '../model/openelm.js';
import type { KVCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OpenELMError } from '../core/errors.js';
import { generateStream, type GenerateOptions, type GenerationResult, type StreamChunk } from '../generate/generate.js';
import { corenetInstructTemplate, type ChatMessage, type ChatTemplate } from './template.js';
import { encodeChatText } from './tokenize.js';
import { TextStream } from './text-stream.js';

export type ChatTurnOptions = Omit<GenerateOptions, 'cache'>;

export interface ChatSessionOptions {
  /** System prompt (a first "system" message). */
  system?: string;
  /** Defaults to CoreNet's instruct format. */
  template?: ChatTemplate;
  /** Tokens of context the session may use (default: the model's max_context_length). */
  contextSize?: number;
  /** Generation options for every turn; a turn's own options override them. */
  defaults?: ChatTurnOptions;
  /** Messages to start from (user/assistant turns; a leading system message sets `system`). */
  history?: readonly ChatMessage[];
}

export interface ChatTurnResult extends GenerationResult {
  /** Prompt tokens served from the KV cache (not prefilled again). */
  cachedTokens: number;
  /** Prompt tokens prefilled for this turn. */
  prefilledTokens: number;
  /** Messages dropped from the start of the history to fit the context (0 usually). */
  droppedMessages: number;
}

function lcp(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class ChatSession {
  readonly template: ChatTemplate;
  readonly contextSize: number;
  private system: string | undefined;
  private history: ChatMessage[] = [];
  private cache: KVCache | undefined;
  /** The ids whose keys/values the cache holds, position by position. */
  private cacheIds: number[] = [];
  /** Text and ids of the last prompt + answer, when the answer ended with EOS (see the header). */
  private tail: { text: string; ids: number[] } | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly defaults: ChatTurnOptions;

  constructor(private readonly model: OpenELM, private readonly tokenizer: Tokenizer, opts: ChatSessionOptions = {}) {
    this.template = opts.template ?? corenetInstructTemplate();
    const max = model.config.maxContextLength;
    this.contextSize = opts.contextSize ?? max;
    if (!(Number.isInteger(this.contextSize) && this.contextSize >= 2)) throw new OpenELMError('usage', `chat context size must be an integer >= 2, got ${opts.contextSize}`);
    this.defaults = opts.defaults ?? {};
    this.system = opts.system;
    for (const m of opts.history ?? []) {
      if (m.role === 'system' && this.history.length === 0) this.system = m.content;
      else this.history.push({ role: m.role, content: m.content });
    }
  }

  /** The conversation so far, system prompt first. */
  get messages(): ChatMessage[] {
    return [...(this.system !== undefined ? [{ role: 'system', content: this.system }] : []), ...this.history.map((m) => ({ ...m }))];
  }

  /** Tokens currently held in the KV cache. */
  get cachedTokens(): number { return this.cache?.length ?? 0; }

  /** Replace (or with undefined, remove) the system prompt; the history is kept. */
  setSystem(text: string | undefined): void { this.system = text; this.tail = undefined; }

  /** Forget the conversation (the system prompt stays). The cache keeps the shared prefix for reuse. */
  reset(): void { this.history = []; this.tail = undefined; }

  /** One turn: add the user's message, generate the reply. */
  async send(content: string, opts: ChatTurnOptions = {}): Promise<ChatTurnResult> {
    return this.stream(content, opts).done();
  }

  /** One turn, streamed. Turns run one at a time; a second call waits for the first to finish. */
  stream(content: string, opts: ChatTurnOptions = {}): TextStream<ChatTurnResult> {
    if (typeof content !== 'string') throw new OpenELMError('usage', 'a chat message must be a string');
    return new TextStream(this.turn(content, { ...this.defaults, ...opts }));
  }

  private async *turn(content: string, opts: ChatTurnOptions): AsyncGenerator<StreamChunk, ChatTurnResult> {
    // Serialize turns: wait for the previous one, and hold the queue until this one ends.
    const prev = this.queue;
    let release!: () => void;
    this.queue = new Promise<void>((r) => { release = r; });
    try {
      await prev.catch(() => undefined);
      return yield* this.runTurn(content, opts);
    } finally {
      release();
    }
  }

  private promptIds(msgs: ChatMessage[]): { text: string; ids: number[] } {
    const text = this.template.render(msgs, { addGenerationPrompt: true });
    const t = this.tail;
    if (t && text.startsWith(t.text)) {
      return { text, ids: t.ids.concat(encodeChatText(this.tokenizer, text.slice(t.text.length), this.template, { bos: false })) };
    }
    return { text, ids: encodeChatText(this.tokenizer, text, this.template) };
  }

  private async *runTurn(content: string, opts: ChatTurnOptions): AsyncGenerator<StreamChunk, ChatTurnResult> {
    const cap = this.contextSize;
    const maxTokens = opts.maxTokens ?? 128;
    const reserve = Math.max(1, Math.min(maxTokens, Math.floor(cap / 2)));
    const user: ChatMessage = { role: 'user', content };
    let dropped = 0;
    let p = this.promptIds([...this.messages, user]);
    // Drop the oldest exchanges until the prompt plus room for an answer fits. With no history left
    // a prompt that fits at all still runs (its answer may end early on the context limit).
    while (p.ids.length + reserve > cap && this.history.length > 0) {
      const next = this.history.findIndex((m, i) => i > 0 && m.role === 'user');
      const n = next < 0 ? this.history.length : next;
      this.history.splice(0, n);
      dropped += n;
      this.tail = undefined;
      p = this.promptIds([...this.messages, user]);
    }
    if (p.ids.length >= cap) {
      throw new OpenELMError('context', `the message needs ${p.ids.length} prompt tokens${this.system !== undefined ? ' (with the system prompt)' : ''} but the chat context holds ${cap}; shorten it`);
    }
    const ids = p.ids;
    this.cache ??= this.model.newCache(cap);
    const keep = Math.min(lcp(this.cacheIds, ids), ids.length - 1);
    this.cache.truncate(Math.min(keep, this.cache.length));
    this.cacheIds.length = this.cache.length;
    const cached = this.cache.length;

    const gen: number[] = [];
    let text = '';
    let result: GenerationResult | undefined;
    let failed = false;
    const t0 = performance.now();
    const it = generateStream(this.model, this.tokenizer, ids, { ...opts, maxTokens, cache: this.cache });
    try {
      for (;;) {
        const r = await it.next();
        if (r.done) { result = r.value; break; }
        gen.push(...r.value.ids);
        text += r.value.text;
        yield r.value;
      }
    } catch (e) {
      failed = true;
      // The cache may hold a half-written step: start the next turn from a clean cache.
      this.cache.reset();
      this.cacheIds = [];
      this.tail = undefined;
      throw e;
    } finally {
      if (!failed) {
        if (!result) await it.return(undefined as never).catch(() => undefined);
        const all = ids.concat(gen);
        this.cacheIds = all.slice(0, this.cache.length);
        const answer = result?.text ?? text;
        this.history.push(user, { role: 'assistant', content: answer });
        this.tail = result && result.finishReason === 'stop' && gen[gen.length - 1] === this.tokenizer.eosId
          ? { text: p.text + answer + this.template.eosToken, ids: all }
          : undefined;
        // The consumer stopped iterating early: still hand back what was produced.
        // biome-ignore lint/correctness/noUnsafeFinally: a consumer's break resumes here with a return, and only a return in finally replaces its value; no exception is in flight (failed is false)
        if (!result) return { ...partialResult(ids.length, gen, text, performance.now() - t0), cachedTokens: cached, prefilledTokens: ids.length - cached, droppedMessages: dropped };
      }
    }
    return { ...result, cachedTokens: cached, prefilledTokens: ids.length - cached, droppedMessages: dropped };
  }
}

/** The result of a generation its consumer broke off (no timing split between prefill and decode). */
export function partialResult(promptTokens: number, ids: number[], text: string, ms: number): GenerationResult {
  return {
    ids, text, finishReason: 'abort', promptTokens,
    timings: { prompt_n: promptTokens, prompt_ms: 0, prompt_per_second: 0, predicted_n: ids.length, predicted_ms: ms, predicted_per_second: ids.length / Math.max(1e-9, ms / 1000) },
  };
}
