// Access to the committed PyTorch golden fixtures (test/golden/<name>/, made by tools/make_goldens.py).
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';

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
