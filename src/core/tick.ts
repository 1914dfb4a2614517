// Let pending events (an abort, a new request, Ctrl-C) run between decode steps without the 1 ms
// floor of setTimeout: setImmediate in Node, a MessageChannel round trip in browsers.

const g = globalThis as unknown as { setImmediate?: (f: () => void) => unknown; MessageChannel?: new () => { port1: { onmessage: (() => void) | null }; port2: { postMessage(m: unknown): void } } };

export function tick(): Promise<void> {
  if (g.setImmediate) return new Promise<void>((r) => { g.setImmediate!(r); });
  if (g.MessageChannel) {
    return new Promise<void>((r) => {
      const ch = new g.MessageChannel!();
      ch.port1.onmessage = () => r();
      ch.port2.postMessage(0);
    });
  }
  return new Promise<void>((r) => setTimeout(r, 0));
}
