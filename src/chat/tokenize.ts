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

/** Token ids of already-rendered chat text; the template's eos/bos strings become the EOS/BOS ids. */
export function encodeChatText(tok: Tokenizer, text: string, template: Pick<ChatTemplate, 'eosToken' | 'bosToken'>, opts: ChatEncodeOptions = {}): number[] {
  const specials: [string, number][] = [];
  if (template.eosToken) specials.push([template.eosToken, tok.eosId]);
  if (template.bosToken) specials.push([template.bosToken, tok.bosId]);
  const out: number[] = [];
  let pos = 0;
  while (pos <= text.length) {
    // The earliest special string from pos (the longer one on a tie).
    let at = -1, hit: [string, number] | undefined;
    for (const s of specials) {
      const i = text.indexOf(s[0], pos);
      if (i >= 0 && (at < 0 || i < at || (i === at && s[0].length > hit![0].length))) { at = i; hit = s; }
    }
    const end = at < 0 ? text.length : at;
    if (end > pos) for (const id of tok.encode(text.slice(pos, end))) out.push(id);
    if (!hit) break;
    out.push(hit[1]);
    pos = at + hit[0].length;
  }
  if ((opts.bos ?? true) && out[0] !== tok.bosId) out.unshift(tok.bosId);
  return out;
}
