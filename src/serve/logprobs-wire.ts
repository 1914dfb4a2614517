// Log-probabilities in OpenAI's two wire shapes.
//
// /v1/completions (the legacy shape lm-evaluation-harness reads):
//   {tokens: [str], token_logprobs: [num|null], top_logprobs: [{str: num}|null], text_offset: [int]}
//   one entry per token: with `echo`, the prompt's tokens first (the first one null), then the
//   generated ones. lm-eval (0.4.13, models/openai_completions.py parse_logprobs) sums
//   token_logprobs[ctxlen:-1] and calls a continuation greedy when each of those logprobs equals the
//   largest value of its top_logprobs object.
// /v1/chat/completions:
//   {content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}
//
// A token's string is the text it adds (U+2581 as a space; "<s>" for control tokens); a byte token
// that is not a character on its own is written "<0xNN>" and its `bytes` hold the byte.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { StreamDecoder } from '../tokenizer/stream-decoder.js';
import type { TokenLogprob } from '../generate/logprobs.js';

export function tokenText(tok: Tokenizer, id: number): string {
  const b = tok.byteValue(id);
  if (b >= 0) return b < 0x80 ? String.fromCharCode(b) : tok.idToPiece(id);
  return tok.idToPiece(id).replaceAll('\u2581', ' ');
}

export function tokenBytes(tok: Tokenizer, id: number): number[] {
  const b = tok.byteValue(id);
  if (b >= 0) return [b];
  return [...Buffer.from(tok.idToPiece(id).replaceAll('\u2581', ' '), 'utf8')];
}

/**
 * Where each token's text starts in the decoded text of the tokens fed so far (in code points, as
 * Python counts string positions), plus `start`. A token that completes a multi-byte character
 * counts from where the character starts.
 */
export class OffsetTracker {
  private readonly dec: StreamDecoder;
  private pos: number;
  private pendingFrom = -1;

  /** `after`: tokens already in the text (a prompt, when generated tokens continue it), not reported. */
  constructor(tok: Tokenizer, start = 0, after: readonly number[] = []) {
    this.dec = new StreamDecoder(tok);
    this.pos = start;
    for (const id of after) this.next(id);
  }

  /** The offset of token `id`, which is then added to the text. */
  next(id: number): number {
    if (this.pendingFrom < 0) this.pendingFrom = this.pos;
    const at = this.dec.hasPending ? this.pendingFrom : this.pos;
    this.pos += [...this.dec.push(id)].length;
    if (!this.dec.hasPending) this.pendingFrom = -1;
    return at;
  }
}

export function textOffsets(tok: Tokenizer, ids: readonly number[], start = 0): number[] {
  const t = new OffsetTracker(tok, start);
  return ids.map((id) => t.next(id));
}

/**
 * Whether the decoded text of `ids`, as the start of a generation, lost the leading space of its
 * first piece (SentencePiece's dummy prefix): text that continues a prompt gets it back.
 */
export function leadingSpaceDropped(tok: Tokenizer, ids: readonly number[]): boolean {
  for (const id of ids) {
    if (tok.isControl(id)) continue;
    if (tok.byteValue(id) >= 0) return false;
    return tok.decodePiece(id, true, true).text !== tok.decodePiece(id, false, true).text;
  }
  return false;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
  text_offset: number[];
}

/** The completions shape for tokens `ids` with their entries (null: no logprob, e.g. the first prompt token). */
export function completionLogprobs(tok: Tokenizer, ids: readonly number[], entries: ReadonlyArray<TokenLogprob | null>, offsets: readonly number[]): CompletionLogprobs {
  return {
    tokens: ids.map((id) => tokenText(tok, id)),
    token_logprobs: entries.map((e) => (e ? e.logprob : null)),
    top_logprobs: entries.map((e) => {
      if (!e) return null;
      const o: Record<string, number> = {};
      // Two tokens with one spelling share a key; the more likely one (listed first) stays.
      for (const t of e.top) { const k = tokenText(tok, t.id); if (!(k in o)) o[k] = t.logprob; }
      return o;
    }),
    text_offset: [...offsets],
  };
}

export interface ChatLogprob { token: string; logprob: number; bytes: number[]; top_logprobs: Array<{ token: string; logprob: number; bytes: number[] }> }

/** The chat shape for generated tokens. */
export function chatLogprobs(tok: Tokenizer, entries: readonly TokenLogprob[]): { content: ChatLogprob[] } {
  return {
    content: entries.map((e) => ({
      token: tokenText(tok, e.id), logprob: e.logprob, bytes: tokenBytes(tok, e.id),
      top_logprobs: e.top.map((t) => ({ token: tokenText(tok, t.id), logprob: t.logprob, bytes: tokenBytes(tok, t.id) })),
    })),
  };
}
