// The WASM kernels of a git revision (or of the working tree), compiled the way
// scripts/build-wasm.mjs compiles them, for the A/B benchmarks (gemv-ab, gemm-ab) that run two
// revisions' kernels side by side on the same memory.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Wasm, type WasmModule } from '../src/backends/wasm/wasm-api.js';

const KDIR = 'src/backends/wasm/kernels';

/** Compile AssemblyScript kernel sources (file name → text) with or without relaxed SIMD. */
export async function compileKernels(sources: Record<string, string>, relaxed: boolean): Promise<WasmModule> {
  const { default: asc } = await import('assemblyscript/asc' as string) as { default: { compileString(s: Record<string, string>, o: object): Promise<{ error: unknown; binary: Uint8Array | null; stderr: { toString(): string } }> } };
  const r = await asc.compileString(sources, {
    optimizeLevel: 3, shrinkLevel: 0, noAssert: true, runtime: 'stub', use: ['abort='],
    importMemory: true, sharedMemory: true, initialMemory: 1, maximumMemory: 65536,
    enable: relaxed ? ['simd', 'threads', 'relaxed-simd'] : ['simd', 'threads'],
  });
  if (r.error || !r.binary) throw new Error(`asc failed:\n${r.stderr.toString()}`);
  return Wasm!.compile(r.binary);
}

/** The kernel sources at git revision `rev` of the repository at `root`, or the working tree's (null). */
export function kernelSourcesAt(root: string, rev: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  const files = rev === null ? fs.readdirSync(path.join(root, KDIR))
    : execFileSync('git', ['ls-tree', '--name-only', `${rev}:${KDIR}`], { cwd: root, encoding: 'utf8' }).trim().split('\n');
  for (const f of files.filter((x) => x.endsWith('.as'))) {
    out[f.replace(/\.as$/, '.ts')] = rev === null ? fs.readFileSync(path.join(root, KDIR, f), 'utf8')
      : execFileSync('git', ['show', `${rev}:${KDIR}/${f}`], { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 });
  }
  return out;
}
