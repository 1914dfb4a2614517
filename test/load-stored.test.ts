// Stored block weights read through the backend in pieces (Backend.loadStored, loadStoredMany; the
// WASM backend's staging blocks scattered on its threads, each dtype put in the layout it keeps on
// the way) end up as the very bytes, layout and kernel flags of allocWeight + one read +
// prepareWeight, whatever the pieces' boundaries (inside a row, across weights, across the GGUF
// tensors of one weight).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BlockDType, Weight } from '../src/backends/backend.js';
import { blockRowBytes } from '../src/backends/weight-format.js';
import { Rng } from '../src/core/rng.js';
import { GGUFModel } from '../src/formats/gguf-model.js';
import { randomBlocks } from './helpers/blocks.js';
import { WASM_CONFIGS, cachedWasm, createWasm, disposeCachedWasm } from './helpers/backends.js';
import { ggufFixture } from './helpers/gguf-fixtures.js';

after(disposeCachedWasm);

/** What a test compares: the weight's bytes and layout, and how the kernels will read it. */
function held(w: Weight): { bytes: Uint8Array; layout: string | undefined; packed: Record<string, unknown> } {
  const p = w.packed as { dtype: number; mins: number; q80r?: true };
  return {
    bytes: new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength).slice(),
    layout: w.layout,
    packed: { dtype: p.dtype, mins: p.mins, q80r: p.q80r },
  };
}

// shapes: small and odd (one piece, its end off a page), and past 2 MiB (pieces end inside a row;
// the pieces hold whole 34-, 144- and 210-byte blocks and whole Q4_0 rows, which the scatter relays)
const SHAPES: [number, number][] = [[37, 32 * 29], [331, 3200], [257, 16384]];
const HALF_CASES = ['finite', 'an infinite d', 'zero and subnormal d'] as const;

for (const cfg of WASM_CONFIGS) {
  for (const dtype of ['q8_0', 'q4_0', 'q4_k', 'q6_k'] as BlockDType[]) {
    test(`loadStored on ${cfg.label}, ${dtype}: the same weight as allocWeight + read + prepareWeight`, async () => {
      const be = await cachedWasm(cfg);
      const rng = new Rng(7);
      for (const [rows, cols] of SHAPES) {
        if (dtype !== 'q8_0' && dtype !== 'q4_0' && cols % 256 !== 0) continue;
        for (const hc of dtype === 'q8_0' ? HALF_CASES : HALF_CASES.slice(0, 1)) {
          const stored = randomBlocks(rng, dtype, rows, cols);
          const bytes = rows * blockRowBytes(dtype, cols);
          assert.equal(stored.length, bytes);
          if (hc !== 'finite') {
            // Q8_0 block 3 of the last row: d = +∞, or d = 0 with block 5's d a subnormal
            const b = (rows * cols) / 32 - 3;
            if (hc === 'an infinite d') { stored[b * 34] = 0x00; stored[b * 34 + 1] = 0x7c; }
            else { stored[b * 34] = 0; stored[b * 34 + 1] = 0; stored[(b - 2) * 34] = 1; stored[(b - 2) * 34 + 1] = 0; }
          }
          const ref = be.allocWeight(dtype, rows, cols);
          (ref.data as Uint8Array).set(stored);
          be.prepareWeight(ref);
          const pieces: [number, number][] = [];
          const w = be.loadStored(dtype, rows, cols, (at, out) => { pieces.push([at, out.length]); out.set(stored.subarray(at, at + out.length)); });
          be.prepareWeight(w);
          // the pieces cover the blocks once, in order
          let end = 0;
          for (const [at, n] of pieces) { assert.equal(at, end); end += n; }
          assert.equal(end, bytes);
          if (cfg.threads > 1 && bytes > 2 << 20) assert.ok(pieces.length > 1, 'read in pieces');
          const a = held(ref), b = held(w);
          assert.deepEqual(b.packed, a.packed, `${rows}×${cols}, ${hc}: kernel flags`);
          assert.equal(b.layout, a.layout, `${rows}×${cols}, ${hc}: layout`);
          assert.ok(Buffer.from(b.bytes).equals(Buffer.from(a.bytes)), `${rows}×${cols}, ${hc}: bytes`);
          if (hc === 'an infinite d') assert.equal(w.layout, undefined, 'an infinite d keeps the stored layout');
          be.freeWeight(ref); be.freeWeight(w);
        }
      }
    });
  }

  test(`loadStored on ${cfg.label}: a failing read gives the storage back`, async () => {
    const be = await cachedWasm(cfg);
    const before = be.memory().inUse;
    assert.throws(() => be.loadStored('q8_0', 331, 3200, (at, out) => { if (at > 0 || out.length === 331 * 100 * 34) throw new Error('short file'); }), /short file/);
    assert.equal(be.memory().inUse, before);
  });
}

for (const cfg of WASM_CONFIGS) {
  // One batch as a model load makes it: several dtypes back to back, a Q8_0 weight with an infinite d
  // (kept as stored), Q4_0 weights with and without a half that is not a normal one (the
  // GEMV's fast-widening flag), a dtype the scatter copies as stored (Q5_0), pieces across weights.
  test(`loadStoredMany on ${cfg.label}: each weight as allocWeight + read + prepareWeight, one pipeline`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(11);
    const specs: [BlockDType, number, number, string?][] = [
      ['q8_0', 331, 3200], ['q4_0', 129, 16384], ['q4_k', 37, 512], ['q8_0', 37, 32 * 29, 'inf'], ['q6_k', 129, 16384],
      ['q4_0', 331, 3200, 'zero'], ['q5_0', 331, 3200], ['q4_0', 37, 32 * 29, 'negative'], ['q4_k', 129, 16384], ['q8_0', 5, 64],
    ];
    const stored = specs.map(([dtype, rows, cols, hc]) => {
      const b = randomBlocks(rng, dtype, rows, cols);
      // Q4_0: every d a positive normal half but the one the case changes (negative: still normal)
      if (dtype === 'q4_0') for (let o = 0; o < b.length; o += 18) { b[o + 1] = 0x30 + (b[o + 1] & 7); }
      const last = (rows * cols) / 32 - 3, size = dtype === 'q8_0' ? 34 : 18;
      if (hc === 'inf') { b[last * size] = 0x00; b[last * size + 1] = 0x7c; }
      if (hc === 'zero') { b[last * size] = 0; b[last * size + 1] = 0; }
      if (hc === 'negative') b[last * size + 1] |= 0x80;
      return b;
    });
    const before = be.memory().inUse;
    const reads: [number, number, number][] = [];
    const ws = be.loadStoredMany(specs.map(([dtype, rows, cols], i) => ({
      dtype, rows, cols, read: (at: number, out: Uint8Array) => { reads.push([i, at, out.length]); out.set(stored[i].subarray(at, at + out.length)); },
    })));
    assert.equal(ws.length, specs.length);
    // every weight's pieces in order, the weights one after another
    let item = 0, end = 0;
    for (const [i, at, n] of reads) {
      if (i !== item) { assert.equal(end, stored[item].length, `weight ${item} read whole`); assert.equal(i, item + 1); item = i; end = 0; }
      assert.equal(at, end);
      end += n;
    }
    assert.equal(item, specs.length - 1);
    assert.equal(end, stored[item].length);
    specs.forEach(([dtype, rows, cols, hc], i) => {
      const ref = be.allocWeight(dtype, rows, cols);
      (ref.data as Uint8Array).set(stored[i]);
      be.prepareWeight(ref);
      const w = ws[i];
      be.prepareWeight(w);
      const a = held(ref), b = held(w), what = `${dtype} ${rows}×${cols}${hc ? `, ${hc}` : ''}`;
      assert.deepEqual(b.packed, a.packed, `${what}: kernel flags`);
      assert.equal(b.layout, a.layout, `${what}: layout`);
      assert.ok(Buffer.from(b.bytes).equals(Buffer.from(a.bytes)), `${what}: bytes`);
      // (a negative normal d keeps Q4_0's fast widening; a zero one does not)
      if (hc === 'zero') assert.equal(b.packed.mins, 0, `${what}: no fast widening`);
      else if (dtype === 'q4_0') assert.equal(b.packed.mins, 1, `${what}: fast widening`);
      be.freeWeight(ref);
    });
    for (const w of ws) be.freeWeight(w);
    assert.equal(be.memory().inUse, before);
    assert.deepEqual(be.loadStoredMany([]), []);
  });

  test(`loadStoredMany on ${cfg.label}: a read failing in a later weight gives every weight's storage back`, async () => {
    const be = await cachedWasm(cfg);
    const before = be.memory().inUse;
    const items = (['q8_0', 'q4_0', 'q6_k'] as BlockDType[]).map((dtype, i) => ({
      dtype, rows: 129, cols: 16384,
      // the weight's last piece (one thread: its only one)
      read: (at: number, out: Uint8Array) => { if (i === 2 && at + out.length === 129 * 64 * 210) throw new Error('short file'); },
    }));
    assert.throws(() => be.loadStoredMany(items), /short file/);
    assert.equal(be.memory().inUse, before);
  });
}

test('loadStoredMany over several wasm memories: each memory its own staging, the same weights as in one memory', async () => {
  // 16 MiB memories hold a few of these ~2.2 MB weights each: the batch spreads over several, and
  // consecutive pieces are staged in different memories
  const be = await createWasm({ threads: 2, shardBytes: 16 << 20 });
  try {
    const one = await cachedWasm(WASM_CONFIGS[1]);
    const rng = new Rng(5);
    const specs = Array.from({ length: 9 }, (_, i): [BlockDType, number, number] => [(['q8_0', 'q4_k', 'q6_k'] as BlockDType[])[i % 3], 129, 16384]);
    const stored = specs.map(([dtype, rows, cols]) => randomBlocks(rng, dtype, rows, cols));
    const items = specs.map(([dtype, rows, cols], i) => ({ dtype, rows, cols, read: (at: number, out: Uint8Array) => out.set(stored[i].subarray(at, at + out.length)) }));
    const ws = be.loadStoredMany(items), refs = one.loadStoredMany(items);
    assert.ok(be.memoryCount > 1, 'several memories');
    ws.forEach((w, i) => {
      be.prepareWeight(w); one.prepareWeight(refs[i]);
      const a = held(refs[i]), b = held(w);
      assert.deepEqual(b.packed.dtype, a.packed.dtype);
      assert.equal(b.layout, a.layout);
      assert.ok(Buffer.from(b.bytes).equals(Buffer.from(a.bytes)), `weight ${i} (${specs[i][0]}): bytes`);
    });
    for (const w of refs) one.freeWeight(w);
  } finally { be.dispose(); }
});

test('GGUF storedWeight readRange: pieces across the tensors of one weight read as read() does', () => {
  const m = GGUFModel.open(ggufFixture('gqa2-hd64-q8_0.gguf'));
  try {
    // proj_1: ffn_gate's blocks then ffn_up's, one part
    const [p] = m.storedWeight('transformer.layers.2.ffn.proj_1.weight')!;
    assert.ok(p.readRange && p.bytes !== undefined);
    const whole = new Uint8Array(p.bytes);
    p.read(whole);
    for (const step of [1000, 17, p.bytes / 2 + 5, p.bytes]) {
      const got = new Uint8Array(p.bytes);
      for (let at = 0; at < p.bytes; at += step) p.readRange(at, got.subarray(at, Math.min(at + step, p.bytes)));
      assert.ok(Buffer.from(got).equals(Buffer.from(whole)), `pieces of ${step}`);
    }
    assert.throws(() => p.readRange!(p.bytes! - 10, new Uint8Array(20)), /bytes of blocks/);
  } finally { m.close(); }
});
