// Turning (context, continuation) strings into token ids the way lm-eval's TemplateLM does
// (lm_eval/api/model.py at dc90fec, with the HF model's add_bos_token=True as OpenELM's runs used):
// trailing whitespace of the context moves to the continuation, the continuation's ids are
// enc(context + continuation) minus the first len(enc(context)) ids, and an empty context becomes the
// end-of-text token.

import { OpenELMError } from '../core/errors.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { pyRstrip } from '../core/pystr.js';

export interface EncodeSettings { bos: boolean; eotId: number; }

export interface EncodedPair { ctx: number[]; cont: number[]; }

export class PairEncoder {
  private cache = new Map<string, number[]>();
  constructor(private readonly tok: Tokenizer, private readonly s: EncodeSettings) {}

  private enc(text: string): number[] {
    let ids = this.cache.get(text);
    if (!ids) {
      ids = this.tok.encode(text, { bos: this.s.bos });
      if (this.cache.size > 4096) this.cache.clear();
      this.cache.set(text, ids);
    }
    return ids;
  }

  encode(context: string, continuation: string): EncodedPair {
    if (context === '') return { ctx: [this.s.eotId], cont: this.tok.encode(continuation, { bos: this.s.bos }) };
    const kept = pyRstrip(context);
    if (kept.length < context.length) {
      continuation = context.slice(kept.length) + continuation;
      context = kept;
    }
    const ctx = this.enc(context);
    const whole = this.tok.encode(context + continuation, { bos: this.s.bos });
    const cont = whole.slice(ctx.length);
    if (cont.length === 0) throw new OpenELMError('eval', `continuation ${JSON.stringify(continuation.slice(0, 40))} encodes to no tokens after its context`);
    return { ctx, cont };
  }
}
