// A streamed generation: iterate it for text chunks; `result` settles when the iteration ends
// (also after an early `break` or an abort, then with finishReason "abort").

import type { StreamChunk } from '../generate/generate.js';

export class TextStream<R> implements AsyncIterable<StreamChunk> {
  /** The final result; settles once the stream has been iterated to its end (or broken off). */
  readonly result: Promise<R>;
  private resolve!: (r: R) => void;
  private reject!: (e: unknown) => void;
  private started = false;

  constructor(private readonly gen: AsyncGenerator<StreamChunk, R>) {
    this.result = new Promise<R>((res, rej) => { this.resolve = res; this.reject = rej; });
    // Nobody may ever look at `result`; a failure still surfaces through the iteration.
    this.result.catch(() => undefined);
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamChunk, R> {
    if (this.started) throw new TypeError('a TextStream can be iterated only once');
    this.started = true;
    const g = this.gen;
    const settle = (r: IteratorResult<StreamChunk, R>) => { if (r.done) this.resolve(r.value); return r; };
    return {
      next: async () => {
        try { return settle(await g.next()); } catch (e) { this.reject(e); throw e; }
      },
      return: async (v?: R | PromiseLike<R>) => {
        try {
          const r = await g.return(v as R);
          // A generator that returns nothing of its own on early exit leaves `result` unresolved;
          // the generators in this package always return a result from their finally blocks.
          return settle(r.done ? r : { done: true, value: r.value as R });
        } catch (e) { this.reject(e); throw e; }
      },
    };
  }

  /** Consume the rest of the stream and return its result (for callers that only want the end). */
  async done(): Promise<R> {
    if (!this.started) for await (const _ of this) { /* drain */ }
    return this.result;
  }
}
