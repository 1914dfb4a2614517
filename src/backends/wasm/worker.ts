// A kernel worker: instantiates the shared-memory kernels and claims chunks of every job the main
// thread opens (see sync.ts), forever, until QUIT. It never returns to its event loop, so it is
// stopped through the control block (or terminate()).

import v8 from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { RELAXED_FLAG, KERNEL_NAMES } from './kernels.js';
import { CTL_OFFSET, CTL_SLOTS, GEN, QUIT, SLEEPERS, SPIN_CHECK, WORKER_SPIN_MS, drain, type ChunkFn } from './sync.js';
import { Wasm, type WasmMemory, type WasmModule } from './wasm-api.js';

interface Init { module: WasmModule; memory: WasmMemory; tid: number; relaxed: boolean; }

const init = workerData as Init;
if (init.relaxed) v8.setFlagsFromString(RELAXED_FLAG);
const instance = new Wasm!.Instance(init.module, { env: { memory: init.memory } });
const fns = KERNEL_NAMES.map((n) => instance.exports[n] as ChunkFn);
const ctl = new Int32Array(init.memory.buffer, CTL_OFFSET, CTL_SLOTS);
const tid = init.tid;

let gen = Atomics.load(ctl, GEN);
parentPort!.postMessage({ ready: true });

for (;;) {
  let g: number;
  let spins = 0, t0 = 0;
  while ((g = Atomics.load(ctl, GEN)) === gen) {
    if (++spins % SPIN_CHECK !== 0) continue;
    const now = performance.now();
    if (spins === SPIN_CHECK) t0 = now;
    else if (now - t0 > WORKER_SPIN_MS) {
      Atomics.add(ctl, SLEEPERS, 1);
      Atomics.wait(ctl, GEN, gen);
      Atomics.sub(ctl, SLEEPERS, 1);
      spins = 0;
    }
  }
  gen = g;
  if (Atomics.load(ctl, QUIT)) break;
  const err = drain(ctl, fns, tid);
  if (err) parentPort!.postMessage({ error: String((err as Error)?.stack ?? err) });
}
