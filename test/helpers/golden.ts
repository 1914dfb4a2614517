// Access to the committed PyTorch golden fixtures (test/golden/<name>/, made by tools/make_goldens.py).
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { resolveConfig, type OpenELMConfig } from '../../src/model/config.js';
import type { TrainableModel } from '../../src/model/trainable.js';

// Compiled tests live in dist/test; the fixtures stay in the source tree.
export const GOLDEN_ROOT = fileURLToPath(new URL('../../../test/golden/', import.meta.url));

export function goldenNames(): string[] {
  if (!fs.existsSync(GOLDEN_ROOT)) return [];
  return fs.readdirSync(GOLDEN_ROOT).filter((n) => fs.existsSync(path.join(GOLDEN_ROOT, n, 'golden.safetensors'))).sort();
}

export class Golden {
  readonly dir: string;
  readonly file: SafetensorsFile;
  constructor(name: string) {
    this.dir = path.join(GOLDEN_ROOT, name);
    this.file = SafetensorsFile.open(path.join(this.dir, 'golden.safetensors'));
  }
  has(name: string): boolean { return this.file.has(name); }
  shape(name: string): number[] { return [...this.file.info(name).shape]; }
  f32(name: string): Float32Array { return this.file.readF32(name); }
  i32(name: string): Int32Array {
    const info = this.file.info(name);
    if (info.dtype !== 'I32') throw new Error(`${name} is ${info.dtype}, expected I32`);
    const b = this.file.readRaw(name);
    return new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  }
  metadata(): Record<string, string> { return this.file.metadata; }
  close(): void { this.file.close(); }
}

/** The resolved config of golden model `name` (test/golden/<name>/config.json). */
export function goldenConfig(name: string): OpenELMConfig {
  return resolveConfig(JSON.parse(fs.readFileSync(path.join(GOLDEN_ROOT, name, 'config.json'), 'utf8')));
}

/** Copy golden model `name`'s weights (model.safetensors) into a trainable model's parameters. */
export function loadGoldenParams(name: string, model: TrainableModel): void {
  const w = SafetensorsFile.open(path.join(GOLDEN_ROOT, name, 'model.safetensors'));
  try {
    for (const e of model.layout.entries) model.setParam(e.name, w.readF32(e.name));
  } finally {
    w.close();
  }
}

/** Token ids as Int32, whether stored as I64 (PyTorch's default), I32 or a float tensor. */
export function readInts(f: SafetensorsFile, name: string): Int32Array {
  const raw = f.readRaw(name), t = f.info(name);
  const n = t.shape.reduce((a, b) => a * b, 1);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Int32Array(n);
  if (t.dtype === 'I64') for (let i = 0; i < n; i++) out[i] = Number(dv.getBigInt64(i * 8, true));
  else if (t.dtype === 'I32') for (let i = 0; i < n; i++) out[i] = dv.getInt32(i * 4, true);
  else return Int32Array.from(f.readF32(name));
  return out;
}
