// Which tokens of a rendered conversation are the assistant's: each assistant message's content and
// the end-of-turn string (`</s>`) that closes it, nothing else (not the `<|assistant|>` header, not
// the newline after `</s>`, not the user or system turns).
//
// The spans come from the template itself, so any template that writes message contents verbatim
// works, whatever its markers:
//   1. The whole conversation is rendered once and tokenized as the chat does at inference
//      (encodeChatSegments: special strings become their ids, the text between them is encoded on
//      its own), so training sees exactly the ids `openelm chat` feeds the model.
//   2. For assistant message i, rendering messages[0..i) and messages[0..i] gives the characters of
//      its turn; the content is its last verbatim occurrence that ends before the turn's last
//      end-of-turn string (templates that strip the content are matched on the stripped text).
//   3. Characters become token positions: a cut right after a special string is exact; inside a
//      plain segment the tokens of the text before the cut are compared with the segment's tokens,
//      and a token that straddles the cut (BPE merged across it) counts as the assistant's, as TRL
//      does when prompt and answer merge.

import { OpenELMError } from '../../core/errors.js';
import type { ChatMessage, ChatTemplate } from '../../chat/template.js';
import { encodeChatSegments, type EncodedChat } from '../../chat/tokenize.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';

/** A problem with one example: it is skipped and counted, the run goes on. */
export class ExampleError extends Error {
  constructor(message: string, readonly kind: 'malformed' | 'empty' = 'malformed') { super(message); }
}

export const CHAT_ROLES = ['system', 'user', 'assistant'] as const;

/** A JSON value as a list of {role, content} messages, or an ExampleError naming what is wrong. */
export function parseMessages(v: unknown, field: string): ChatMessage[] {
  if (!Array.isArray(v)) throw new ExampleError(`"${field}" must be a list of {role, content} messages`);
  if (v.length === 0) throw new ExampleError(`"${field}" is an empty list`);
  return v.map((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new ExampleError(`${field}[${i}] must be an object {role, content}`);
    const o = m as Record<string, unknown>;
    if (typeof o.role !== 'string') throw new ExampleError(`${field}[${i}] needs a string "role"`);
    if (!(CHAT_ROLES as readonly string[]).includes(o.role)) throw new ExampleError(`${field}[${i}] has unknown role "${o.role}" (expected system, user or assistant)`);
    if (typeof o.content !== 'string') throw new ExampleError(`${field}[${i}] (${o.role}) needs a string "content"`);
    return { role: o.role, content: o.content };
  });
}

export interface AssistantSpans {
  /** The whole conversation's ids, BOS first. */
  ids: number[];
  /** [start, end) token ranges, one per assistant message, in order. */
  spans: [number, number][];
}

function commonPrefix(a: readonly number[], b: readonly number[], bOffset: number, bEnd: number): number {
  const n = Math.min(a.length, bEnd - bOffset);
  let i = 0;
  while (i < n && a[i] === b[bOffset + i]) i++;
  return i;
}

/**
 * Token position of character `c` of the rendered text: the number of leading tokens that lie
 * entirely before c (`cover` false) or that are needed to cover every character before c (`cover`
 * true). The two differ only when a token straddles c.
 */
function tokenAt(tok: Tokenizer, text: string, enc: EncodedChat, c: number, cover: boolean): number {
  if (c >= text.length) return enc.ids.length;
  const seg = enc.segments.find((s) => c >= s.charStart && c < s.charEnd);
  if (!seg) return enc.ids.length;
  if (c === seg.charStart) return seg.tokStart;
  if (seg.special) return cover ? seg.tokEnd : seg.tokStart;
  const before = tok.encode(text.slice(seg.charStart, c));
  const cp = commonPrefix(before, enc.ids, seg.tokStart, seg.tokEnd);
  return seg.tokStart + (cover && cp < before.length ? cp + 1 : cp);
}

/** The rendered conversation's ids and each assistant message's trained token range. */
export function assistantSpans(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[]): AssistantSpans {
  const render = (msgs: readonly ChatMessage[]): string => {
    try {
      return template.render(msgs, { addGenerationPrompt: false });
    } catch (e) {
      // A template may refuse a conversation (e.g. roles that do not alternate): that example is skipped.
      if (e instanceof OpenELMError && e.code === 'template') throw new ExampleError(e.message);
      throw e;
    }
  };
  const full = render(messages);
  const enc = encodeChatSegments(tok, full, template);
  const eos = template.eosToken;
  const prefixOf = (n: number): number => {
    // No messages render as nothing before the conversation (some templates cannot render an empty list).
    if (n === 0) return 0;
    const p = render(messages.slice(0, n));
    if (!full.startsWith(p)) {
      throw new OpenELMError('template', `chat template ${template.source} renders the first ${n} messages as text that does not start the whole conversation; cannot tell which tokens are the assistant's`);
    }
    return p.length;
  };
  const spans: [number, number][] = [];
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role !== 'assistant') continue;
    if (m.content.trim() === '') throw new ExampleError(`assistant message ${i} is empty`, 'empty');
    const a = prefixOf(i), b = prefixOf(i + 1);
    const close = eos ? full.lastIndexOf(eos, b - eos.length) : -1;
    const hasClose = close >= a;
    const limit = hasClose ? close : b;
    let cs = -1, len = 0;
    for (const c of [m.content, m.content.trim()]) {
      const at = full.lastIndexOf(c, limit - c.length);
      if (c.length > 0 && at >= a) { cs = at; len = c.length; break; }
    }
    if (cs < 0) throw new ExampleError(`assistant message ${i}: the chat template ${template.source} does not write its content verbatim`);
    const start = tokenAt(tok, full, enc, cs, false);
    const end = hasClose ? tokenAt(tok, full, enc, close + eos.length, false) : tokenAt(tok, full, enc, cs + len, true);
    spans.push([start, end]);
  }
  return { ids: enc.ids, spans };
}
