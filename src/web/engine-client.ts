// The page's side of the engine worker: requests as promises, with callbacks for what streams in.

import type { FromEngine, EngineHello, ToEngine } from './protocol.js';

type DoneMsg = Extract<FromEngine, { type: 'done' }>;
type Listener = (m: FromEngine) => void;

/** An error the engine reported (one line for the user) or a failure of the worker itself. */
export class EngineError extends Error {
  /** Whether the engine still holds a model after this failure. */
  constructor(message: string, readonly code: string, readonly loaded = true) { super(message); this.name = 'EngineError'; }
}

export interface Engine {
  readonly hello: EngineHello;
  /** Send a request; `onEvent` sees its progress/chunk/step messages; resolves with its 'done'. */
  request(m: DistributiveOmit<ToEngine, 'id'>, onEvent?: Listener): Promise<DoneMsg>;
  stop(): void;
  /** Called when the worker itself fails (its script did not load, it crashed). */
  onFatal?: (message: string) => void;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export function startEngine(url: URL): Promise<Engine> {
  const worker = new Worker(url, { type: 'module', name: 'openelm-engine' });
  const pending = new Map<number, { resolve: (m: DoneMsg) => void; reject: (e: Error) => void; on?: Listener }>();
  let next = 1;
  return new Promise<Engine>((resolve, reject) => {
    let engine: Engine | undefined;
    const fatal = (message: string) => {
      for (const p of pending.values()) p.reject(new EngineError(message, 'worker'));
      pending.clear();
      if (!engine) reject(new EngineError(message, 'worker'));
      else engine.onFatal?.(message);
    };
    worker.addEventListener('error', (e) => { e.preventDefault(); fatal(`the engine worker failed: ${e.message || 'its script did not load'}`); });
    worker.addEventListener('messageerror', () => fatal('the engine worker sent a message the page cannot read'));
    worker.addEventListener('message', (e: MessageEvent<FromEngine>) => {
      const m = e.data;
      if (m.type === 'hello') {
        engine = {
          hello: m.hello,
          request(req, on) {
            const id = next++;
            return new Promise<DoneMsg>((res, rej) => {
              pending.set(id, { resolve: res, reject: rej, on });
              worker.postMessage({ ...req, id } as ToEngine);
            });
          },
          stop() { worker.postMessage({ type: 'stop' } satisfies ToEngine); },
        };
        resolve(engine);
        return;
      }
      const p = pending.get(m.id);
      if (!p) return;
      if (m.type === 'done') { pending.delete(m.id); p.resolve(m); }
      else if (m.type === 'error') { pending.delete(m.id); p.reject(new EngineError(m.message, m.code, m.loaded)); }
      else p.on?.(m);
    });
  });
}
