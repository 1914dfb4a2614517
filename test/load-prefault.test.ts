// A weight's storage is mapped on every thread when it is allocated (wasm-backend.ts prefault,
// train_ops.as OP_TOUCH): the storage stays all zeros, and nothing outside it is written.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { weightBytes } from '../src/backends/weight-format.js';
import { WASM_CONFIGS, cachedWasm, disposeCachedWasm, f32 } from './helpers/backends.js';

after(disposeCachedWasm);

for (const cfg of WASM_CONFIGS) {
  test(`allocWeight on ${cfg.label}: storage of several pages reads as zeros, its neighbours keep their values`, async () => {
    const be = await cachedWasm(cfg);
    // 63 rows of 32 Ki values: 2,193,408 bytes of Q8_0 blocks (a multiple of 64, so a tensor of that
    // size leaves a hole the weight fills exactly; its end is not on a page boundary)
    const rows = 63, cols = 32 * 1024, bytes = weightBytes('q8_0', rows * cols);
    assert.equal(bytes % 64, 0);
    assert.notEqual(bytes % 4096, 0);
    const before = f32(be.alloc(1000)).fill(1);
    const hole = be.alloc(bytes / 4);
    f32(hole).fill(7);
    const next = f32(be.alloc(1000)).fill(1);
    be.free(hole);
    const w = be.allocWeight('q8_0', rows, cols);
    const d = w.data as Uint8Array;
    assert.equal(d.byteOffset, f32(hole).byteOffset, 'the weight takes the hole');
    assert.equal(d.byteLength, bytes);
    assert.ok(d.every((v) => v === 0), 'zeros');
    assert.ok(before.every((v) => v === 1) && next.every((v) => v === 1), 'the tensors on either side are untouched');
    // and at the top of the memory (pages never used before)
    const fresh = be.allocWeight('q8_0', rows, cols);
    assert.ok((fresh.data as Uint8Array).every((v) => v === 0));
    assert.ok(next.every((v) => v === 1));
    be.freeWeight(w); be.freeWeight(fresh);
  });
}
