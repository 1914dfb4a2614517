// Rendered chat text to token ids. The template writes `</s>` (and maybe `<s>`) as text, but the
// model was trained on the EOS/BOS *ids* there: HF's tokenizer splits the text on its special-token
// strings first and encodes each plain segment on its own. We do the same, so every segment gets
// SentencePiece's dummy-prefix space, as HF's (legacy) Llama tokenizer gives it: the `\n` after
// `</s>` becomes [29871 "▁", 13 "<0x0A>"]. The `<|user|>`-style markers are ordinary text.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { ChatTemplate } from './template.js';

export interface ChatEncodeOptions {
  /** Start with BOS, as HF/TRL do for every training sequence (default true; not doubled if the text starts with the BOS string). */
  bos?: boolean;
}

/** One piece of rendered chat text: a special string (one id) or plain text encoded on its own. */
export interface ChatSegment {
  charStart: number; charEnd: number;
  tokStart: number; tokEnd: number;
  special: boolean;
}

export interface EncodedChat { ids: number[]; segments: ChatSegment[] }

/** encodeChatText, also returning where each special string and plain segment landed (chars and ids). */
export function encodeChatSegments(tok: Tokenizer, text: string, template: Pick<ChatTemplate, 'eosToken' | 'bosToken'>, opts: ChatEncodeOptions = {}): EncodedChat {
  const specials: [string, number][] = [];
  if (template.eosToken) specials.push([template.eosToken, tok.eosId]);
  if (template.bosToken) specials.push([template.bosToken, tok.bosId]);
  const out: number[] = [];
  const segments: ChatSegment[] = [];
  let pos = 0;
  while (pos <= text.length) {
    // The earliest special string from pos (the longer one on a tie).
    let at = -1, hit: [string, number] | undefined;
    for (const s of specials) {
      const i = text.indexOf(s[0], pos);
      if (i >= 0 && (at < 0 || i < at || (i === at && s[0].length > hit![0].length))) { at = i; hit = s; }
    }
    const end = at < 0 ? text.length : at;
    if (end > pos) {
      const t0 = out.length;
      for (const id of tok.encode(text.slice(pos, end))) out.push(id);
      segments.push({ charStart: pos, charEnd: end, tokStart: t0, tokEnd: out.length, special: false });
    }
    if (!hit) break;
    segments.push({ charStart: at, charEnd: at + hit[0].length, tokStart: out.length, tokEnd: out.length + 1, special: true });
    out.push(hit[1]);
    pos = at + hit[0].length;
  }
  if ((opts.bos ?? true) && out[0] !== tok.bosId) {
    out.unshift(tok.bosId);
    for (const g of segments) { g.tokStart++; g.tokEnd++; }
  }
  return { ids: out, segments };
}

/** Token ids of already-rendered chat text; the template's eos/bos strings become the EOS/BOS ids. */
export function encodeChatText(tok: Tokenizer, text: string, template: Pick<ChatTemplate, 'eosToken' | 'bosToken'>, opts: ChatEncodeOptions = {}): number[] {
  return encodeChatSegments(tok, text, template, opts).ids;
}
