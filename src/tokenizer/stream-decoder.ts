// Incremental detokenization for generation: feed ids one at a time and get back only the text
// that is final. The concatenation of everything returned (push()... then flush()) equals
// tokenizer.decode(allIds).
//
// Two things can not be emitted right away:
//   - a UTF-8 character split over several <0xXX> byte tokens: its bytes are held until the
//     character is complete, or until it is certain to be invalid (then U+FFFD per byte, exactly as
//     decode() would produce);
//   - nothing else: the leading-space rule of decode() (drop the U+2581 of the first piece) only
//     depends on what came before, so every non-byte piece is final when it arrives.

import type { DecodeOptions, Tokenizer } from './tokenizer.js';
import { OpenELMError } from '../core/errors.js';
import { decodeUtf8Run } from './utf8.js';

export class StreamDecoder {
  private readonly skipSpecial: boolean;
  private pending: number[] = [];
  private isBosWs = true;
  private bosWsSeen = false;
  private emittedAny = false;

  constructor(
    private readonly tokenizer: Tokenizer,
    opts: DecodeOptions = {},
  ) {
    this.skipSpecial = opts.skipSpecial ?? true;
  }

  /** Adds one id; returns the newly completed text (possibly ''). */
  push(id: number): string {
    const tok = this.tokenizer;
    if (!Number.isInteger(id) || id < 0 || id >= tok.vocabSize) {
      throw new OpenELMError('tokenizer', `token id ${id} is out of range [0, ${tok.vocabSize})`);
    }
    const b = tok.byteValue(id);
    if (b >= 0) {
      this.pending.push(b);
      return this.drainBytes(false);
    }
    let text = this.drainBytes(true);
    if (this.bosWsSeen || this.emittedAny || text.length > 0) this.isBosWs = false;
    const r = tok.decodePiece(id, this.isBosWs, this.skipSpecial);
    this.bosWsSeen = r.bosWsSeen;
    text += r.text;
    if (text.length > 0) this.emittedAny = true;
    return text;
  }

  /** Adds several ids; returns the newly completed text. */
  pushAll(ids: readonly number[]): string {
    let s = '';
    for (const id of ids) s += this.push(id);
    return s;
  }

  /** End of stream: bytes of an unfinished character become U+FFFD, as in decode(). */
  flush(): string {
    const s = this.drainBytes(true);
    if (s.length > 0) this.emittedAny = true;
    return s;
  }

  /** True while bytes of an incomplete character are held back. */
  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  reset(): void {
    this.pending = [];
    this.isBosWs = true;
    this.bosWsSeen = false;
    this.emittedAny = false;
  }

  /**
   * Emits the held bytes that form complete (or certainly invalid) characters. With `final`, the
   * byte run is over and an incomplete tail is invalid too.
   */
  private drainBytes(final: boolean): string {
    const p = this.pending;
    if (p.length === 0) return '';
    const { text: s, next: off } = decodeUtf8Run(p, 0, p.length, !final);
    this.pending = off === p.length ? [] : p.slice(off);
    if (s.length > 0) this.emittedAny = true;
    return s;
  }
}
