// The GGUF fixtures of test/fixtures/gguf/ (tools/make_gguf_fixtures.py) and damaged copies of them.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const GGUF_FIXTURES = fileURLToPath(new URL('../../../test/fixtures/gguf/', import.meta.url));

/** The path of a fixture file. */
export const ggufFixture = (f: string): string => path.join(GGUF_FIXTURES, f);

/** A copy of `src` in `dir` whose tensor `name` declares ggml type `type` (the header is patched in place). */
export function withTensorType(src: string, name: string, type: number, dir: string): string {
  const b = fs.readFileSync(src);
  const key = Buffer.concat([Buffer.alloc(8), Buffer.from(name)]);
  key.writeBigUInt64LE(BigInt(name.length));
  const at = b.indexOf(key);
  assert.ok(at > 0, `${src} has no tensor ${name}`);
  const nd = b.readUInt32LE(at + key.length);
  b.writeUInt32LE(type, at + key.length + 4 + 8 * nd);
  const out = path.join(dir, `type${type}-${path.basename(src)}`);
  fs.writeFileSync(out, b);
  return out;
}
