// TensorBoard event files: CRC-32C and TFRecord framing, our Event encoder against a file written by
// the tensorboard package itself (tools/tensorboard_fixture.py), and the files a training run writes
// (one per run, equal to metrics.jsonl, kept consistent across --resume).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32c, decodeRecords, encodeRecord, maskedCrc32c } from '../src/io/tfrecord.js';
import { decodeEvent, encodeScalarEvent, eventFiles, metricScalars, readEventFile } from '../src/train/tensorboard.js';
import { train } from '../src/train/trainer.js';
import type { MetricLine } from '../src/train/report.js';
import { REPO, tempDir, tinyRecipe } from './helpers/tiny-recipe.js';

const FIXTURE = path.join(REPO, 'test/fixtures/tensorboard');
const tmp = tempDir('openelm-tb-');
const quiet = { log: () => undefined };
const metricsOf = (dir: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricLine);

test('CRC-32C matches the published check values; the mask is TensorFlow\'s', () => {
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);            // RFC 3720 B.4: 32 bytes of zeros
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);  // 32 bytes of 0xff
  const c = crc32c(new TextEncoder().encode('123456789'));
  assert.equal(maskedCrc32c(new TextEncoder().encode('123456789')), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
});

test('our encoder writes the bytes the tensorboard package writes for the same events', () => {
  const file = path.join(FIXTURE, 'events.out.tfevents.1700000000.fixture');
  const want = JSON.parse(fs.readFileSync(path.join(FIXTURE, 'events.json'), 'utf8')) as {
    file_version: string; file_version_wall_time: number;
    events: { step: number; wall_time: number; scalars: Record<string, number> }[];
  };
  const bytes = new Uint8Array(fs.readFileSync(file));
  const records = decodeRecords(bytes, file);
  assert.equal(records.length, 1 + want.events.length);
  const first = decodeEvent(records[0]);
  assert.equal(first.fileVersion, want.file_version);
  assert.equal(first.wallTime, want.file_version_wall_time);
  const ours: Uint8Array[] = [records[0]];
  want.events.forEach((e, i) => {
    const got = decodeEvent(records[i + 1]);
    assert.equal(got.step, e.step);
    assert.equal(got.wallTime, e.wall_time);
    assert.deepEqual(got.scalars, Object.fromEntries(Object.entries(e.scalars).map(([k, v]) => [k, Math.fround(v)])));
    ours.push(encodeScalarEvent({ step: e.step, wallTime: e.wall_time, scalars: e.scalars }));
  });
  assert.ok(Buffer.from(ours.map(encodeRecord).reduce((a, b) => Buffer.concat([a, b]), Buffer.alloc(0))).equals(Buffer.from(bytes)));
});

test('damaged records are refused with the byte offset; a record cut short at the end is dropped', () => {
  const recs = [encodeScalarEvent({ step: 1, wallTime: 1, scalars: { a: 1 } }), encodeScalarEvent({ step: 2, wallTime: 2, scalars: { a: 2 } })].map(encodeRecord);
  const whole = Buffer.concat(recs);
  assert.equal(decodeRecords(whole).length, 2);
  assert.equal(decodeRecords(whole.subarray(0, whole.length - 3)).length, 1);
  const badData = Buffer.from(whole); badData[recs[0].length + 14] ^= 1;
  assert.throws(() => decodeRecords(badData, 'f'), new RegExp(`f: bad data checksum in the record at byte ${recs[0].length}`));
  const badLen = Buffer.from(whole); badLen[0] ^= 4;
  assert.throws(() => decodeRecords(badLen, 'f'), /bad length checksum in the record at byte 0/);
});

test('a training run writes one event file whose scalars equal metrics.jsonl', async () => {
  const r = tinyRecipe(tmp);
  await train({ recipe: r, ...quiet });
  const files = eventFiles(r.outDir);
  assert.equal(files.length, 1);
  const events = readEventFile(files[0]);
  assert.equal(events[0].fileVersion, 'brain.Event:2');
  const ms = metricsOf(r.outDir);
  const scalarEvents = events.filter((e) => e.scalars);
  assert.deepEqual(scalarEvents.map((e) => e.step), ms.map((m) => m.step));
  scalarEvents.forEach((e, i) => {
    const want = Object.fromEntries(Object.entries(metricScalars(ms[i])).map(([k, v]) => [k, Math.fround(v)]));
    assert.deepEqual(e.scalars, want);
    assert.ok(e.wallTime > 1.6e9 && e.wallTime < 4e9, String(e.wallTime));
  });
  assert.ok('val/loss' in scalarEvents[scalarEvents.length - 1].scalars!);
  assert.ok(scalarEvents.every((e, i) => !i || e.wallTime >= scalarEvents[i - 1].wallTime));
});

test('--resume keeps one event file: the events up to the checkpoint with their times, then the new ones', async () => {
  const over = { steps: 10, checkpoint_every: 3, log_every: 1, eval_every: 5 };
  const a = tinyRecipe(tmp, over);
  await train({ recipe: a, stopAfter: 7, ...quiet });
  const before = readEventFile(eventFiles(a.outDir)[0]).filter((e) => e.scalars);
  assert.deepEqual(before.map((e) => e.step), [1, 2, 3, 4, 5, 6, 7]);
  // The checkpoint is at 7 (stop-after writes one); make the resume start from 6 as after a crash.
  fs.rmSync(path.join(a.outDir, 'step-00000007'), { recursive: true });
  fs.writeFileSync(path.join(a.outDir, 'latest'), 'step-00000006\n');
  await train({ recipe: a, resume: true, ...quiet });
  const files = eventFiles(a.outDir);
  assert.equal(files.length, 1, files.join(', '));
  const after = readEventFile(files[0]).filter((e) => e.scalars);
  assert.deepEqual(after.map((e) => e.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(after.slice(0, 6).map((e) => e.wallTime), before.slice(0, 6).map((e) => e.wallTime), 'carried-over events keep their wall times');
  assert.ok(after[6].wallTime > before[6].wallTime, 'step 7 was recomputed');
  const ms = metricsOf(a.outDir);
  after.forEach((e, i) => { assert.equal(e.scalars!['train/loss'], Math.fround(ms[i].loss)); });
});
