// Per-operation wall and CPU time of a backend: every method call goes through a Proxy that times
// it and adds it to the operation's row. Only the call itself is timed: the WASM and native
// kernels run inside it, and a returned promise (loss sums, norms) only hands over their result
// (its settling waits for whatever else the caller does first).
// Matrix products are told apart by shape and direction: 'nt' is a layer's forward (y = x·Wᵀ),
// 'nn' the gradient of its input (dX = dY·W) and 'tn' the gradient of its weight (dW += dYᵀ·X).
// The process CPU time counts every thread (the WASM workers and the native pool), so an
// operation's CPU seconds are what it cost the machine, not only the calling thread.

import type { Backend, MatmulLayout } from '../src/backends/backend.js';

export interface OpRow { op: string; calls: number; wallS: number; cpuS: number; flops: number }

const DIRECTION: Record<MatmulLayout, string> = { nt: 'fwd', nn: 'dX', tn: 'dW' };

/** The backend with its calls timed per operation; `rows()` reads the totals, `reset()` clears them. */
export function profiled(be: Backend): { be: Backend; rows: () => OpRow[]; reset: () => void } {
  const table = new Map<string, OpRow>();
  let depth = 0;
  const add = (op: string, w0: number, c0: NodeJS.CpuUsage, flops: number): void => {
    const c = process.cpuUsage(c0);
    let r = table.get(op);
    if (!r) { r = { op, calls: 0, wallS: 0, cpuS: 0, flops: 0 }; table.set(op, r); }
    r.calls++; r.wallS += (performance.now() - w0) / 1000; r.cpuS += (c.user + c.system) / 1e6; r.flops += flops;
  };
  const wrapped = new Proxy(be, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv) as unknown;
      if (typeof v !== 'function') return v;
      const fn = v as (...a: unknown[]) => unknown;
      if (typeof prop !== 'string') return fn.bind(target);
      return (...a: unknown[]) => {
        // an operation called from inside another one (through the proxy) belongs to the outer one
        if (depth > 0) return fn.apply(target, a);
        let op = prop, flops = 0;
        if (prop === 'matmul') {
          const [M, N, K, layout] = a.slice(3, 7) as [number, number, number, MatmulLayout];
          op = `matmul ${DIRECTION[layout]} ${M}x${N}x${K}`;
          flops = 2 * M * N * K;
        }
        const w0 = performance.now(), c0 = process.cpuUsage();
        depth++;
        try {
          return fn.apply(target, a);
        } finally {
          depth--;
          add(op, w0, c0, flops);
        }
      };
    },
  });
  return { be: wrapped, rows: () => [...table.values()], reset: () => table.clear() };
}

/** A text table of the rows (largest CPU time first), per step, with each row's share of `stepCpuS`. */
export function formatProfile(rows: OpRow[], steps: number, stepWallS: number, stepCpuS: number): string {
  const sorted = [...rows].sort((a, b) => b.cpuS - a.cpuS);
  const out = [`${'operation'.padEnd(34)} ${'calls'.padStart(6)} ${'wall ms'.padStart(9)} ${'cpu ms'.padStart(9)} ${'cpu %'.padStart(6)} ${'GFLOP/cpu-s'.padStart(11)}`];
  let w = 0, c = 0;
  for (const r of sorted) {
    w += r.wallS; c += r.cpuS;
    out.push(`${r.op.padEnd(34)} ${String(r.calls / steps).padStart(6)} ${(r.wallS / steps * 1e3).toFixed(1).padStart(9)} ${(r.cpuS / steps * 1e3).toFixed(1).padStart(9)} ` +
      `${(100 * r.cpuS / steps / stepCpuS).toFixed(1).padStart(6)} ${(r.flops ? (r.flops / r.cpuS / 1e9).toFixed(0) : '').padStart(11)}`);
  }
  out.push(`${'(outside the backend)'.padEnd(34)} ${''.padStart(6)} ${((stepWallS - w / steps) * 1e3).toFixed(1).padStart(9)} ${((stepCpuS - c / steps) * 1e3).toFixed(1).padStart(9)} ` +
    `${(100 * (stepCpuS - c / steps) / stepCpuS).toFixed(1).padStart(6)}`);
  out.push(`${'step'.padEnd(34)} ${''.padStart(6)} ${(stepWallS * 1e3).toFixed(1).padStart(9)} ${(stepCpuS * 1e3).toFixed(1).padStart(9)}`);
  return out.join('\n');
}
