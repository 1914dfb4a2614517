// The worker_threads script of a WASM kernel thread (started by platform/node.ts).

import v8 from 'node:v8';
import { parentPort, workerData } from 'node:worker_threads';
import { RELAXED_FLAG } from '../backends/wasm/kernel-names.js';
import type { KernelWorkerInit } from '../backends/wasm/pool.js';
import { runKernelWorker } from '../backends/wasm/worker-loop.js';

const init = workerData as KernelWorkerInit;
if (init.relaxed) v8.setFlagsFromString(RELAXED_FLAG);
runKernelWorker(init, (m) => parentPort!.postMessage(m));
