// TensorBoard event files for a training run: `out_dir/events.out.tfevents.*`, one TFRecord file of
// `Event` protobufs (a `file_version` event, then one event per metrics line with its scalars as
// `Summary.Value.simple_value`), so `tensorboard --logdir runs/` shows every run's curves. The
// protobuf subset is written and read here by hand (docs/training-logs.md lists the field numbers).
//
// A run keeps exactly one event file. On --resume the events up to the checkpoint's step are copied
// (with their original wall times) into a fresh file that replaces the old ones, so the steps that
// are recomputed after the checkpoint never appear twice.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { decodeRecords, encodeRecord } from '../io/tfrecord.js';
import type { MetricLine } from './report.js';

export const EVENT_FILE_PREFIX = 'events.out.tfevents.';
const FILE_VERSION = 'brain.Event:2';

export interface ScalarEvent {
  step: number;
  /** Seconds since the Unix epoch. */
  wallTime: number;
  scalars: Record<string, number>;
}

// ------------------------------------------------------------------------------- protobuf

class ProtoWriter {
  private bytes: number[] = [];
  private varint(v: bigint | number): void {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) { this.bytes.push(Number(x & 0x7fn) | 0x80); x >>= 7n; }
    this.bytes.push(Number(x));
  }
  private key(field: number, wire: number): void { this.varint((field << 3) | wire); }
  double(field: number, v: number): this {
    this.key(field, 1);
    const b = new Uint8Array(8); new DataView(b.buffer).setFloat64(0, v, true);
    this.bytes.push(...b);
    return this;
  }
  float(field: number, v: number): this {
    this.key(field, 5);
    const b = new Uint8Array(4); new DataView(b.buffer).setFloat32(0, v, true);
    this.bytes.push(...b);
    return this;
  }
  int64(field: number, v: number): this { this.key(field, 0); this.varint(v); return this; }
  bytesField(field: number, v: Uint8Array): this { this.key(field, 2); this.varint(v.length); this.bytes.push(...v); return this; }
  string(field: number, v: string): this { return this.bytesField(field, new TextEncoder().encode(v)); }
  finish(): Uint8Array { return Uint8Array.from(this.bytes); }
}

type ProtoValue = { wire: 0; v: bigint } | { wire: 1; v: DataView } | { wire: 2; v: Uint8Array } | { wire: 5; v: DataView };

/** Fields of one protobuf message, in order (unknown wire types are an error). */
function readProto(buf: Uint8Array, what: string): [number, ProtoValue][] {
  const out: [number, ProtoValue][] = [];
  let off = 0;
  const varint = (): bigint => {
    let r = 0n, shift = 0n;
    for (;;) {
      if (off >= buf.length) throw new OpenELMError('data', `${what}: truncated varint`);
      const b = buf[off++];
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
      shift += 7n;
    }
  };
  const take = (n: number): Uint8Array => {
    if (off + n > buf.length) throw new OpenELMError('data', `${what}: truncated field`);
    const s = buf.subarray(off, off + n); off += n; return s;
  };
  while (off < buf.length) {
    const k = Number(varint());
    const field = k >>> 3, wire = k & 7;
    if (wire === 0) out.push([field, { wire, v: varint() }]);
    else if (wire === 1) { const s = take(8); out.push([field, { wire, v: new DataView(s.buffer, s.byteOffset, 8) }]); }
    else if (wire === 2) { const s = take(Number(varint())); out.push([field, { wire, v: s }]); }
    else if (wire === 5) { const s = take(4); out.push([field, { wire, v: new DataView(s.buffer, s.byteOffset, 4) }]); }
    else throw new OpenELMError('data', `${what}: unsupported protobuf wire type ${wire}`);
  }
  return out;
}

// Field numbers of tensorflow/core/util/event.proto and tensorflow/core/framework/summary.proto.
const EVENT_WALL_TIME = 1, EVENT_STEP = 2, EVENT_FILE_VERSION = 3, EVENT_SUMMARY = 5;
const SUMMARY_VALUE = 1, VALUE_TAG = 1, VALUE_SIMPLE = 2;

export function encodeScalarEvent(e: ScalarEvent): Uint8Array {
  const summary = new ProtoWriter();
  for (const [tag, v] of Object.entries(e.scalars)) {
    summary.bytesField(SUMMARY_VALUE, new ProtoWriter().string(VALUE_TAG, tag).float(VALUE_SIMPLE, v).finish());
  }
  return new ProtoWriter().double(EVENT_WALL_TIME, e.wallTime).int64(EVENT_STEP, e.step).bytesField(EVENT_SUMMARY, summary.finish()).finish();
}

function encodeVersionEvent(wallTime: number): Uint8Array {
  return new ProtoWriter().double(EVENT_WALL_TIME, wallTime).string(EVENT_FILE_VERSION, FILE_VERSION).finish();
}

export interface DecodedEvent { wallTime: number; step: number; fileVersion?: string; scalars?: Record<string, number>; }

export function decodeEvent(buf: Uint8Array, what = 'event'): DecodedEvent {
  const e: DecodedEvent = { wallTime: 0, step: 0 };
  for (const [f, x] of readProto(buf, what)) {
    if (f === EVENT_WALL_TIME && x.wire === 1) e.wallTime = x.v.getFloat64(0, true);
    else if (f === EVENT_STEP && x.wire === 0) e.step = Number(BigInt.asIntN(64, x.v));
    else if (f === EVENT_FILE_VERSION && x.wire === 2) e.fileVersion = new TextDecoder().decode(x.v);
    else if (f === EVENT_SUMMARY && x.wire === 2) {
      e.scalars ??= {};
      for (const [sf, sv] of readProto(x.v, `${what} summary`)) {
        if (sf !== SUMMARY_VALUE || sv.wire !== 2) continue;
        let tag: string | undefined, value: number | undefined;
        for (const [vf, vv] of readProto(sv.v, `${what} summary value`)) {
          if (vf === VALUE_TAG && vv.wire === 2) tag = new TextDecoder().decode(vv.v);
          else if (vf === VALUE_SIMPLE && vv.wire === 5) value = vv.v.getFloat32(0, true);
        }
        if (tag !== undefined && value !== undefined) e.scalars[tag] = value;
      }
    }
  }
  return e;
}

/** Every event of an event file, in order (CRCs checked). */
export function readEventFile(file: string): DecodedEvent[] {
  return decodeRecords(new Uint8Array(fs.readFileSync(file)), file).map((r, i) => decodeEvent(r, `${file} event ${i}`));
}

export function eventFiles(dir: string): string[] {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return []; }
  return names.filter((n) => n.startsWith(EVENT_FILE_PREFIX) && !n.includes('.tmp-')).sort().map((n) => path.join(dir, n));
}

// ------------------------------------------------------------------------------- metrics → scalars

const CORE_KEYS = new Set(['step', 'loss', 'lr', 'grad_norm', 'tokens', 'tokens_per_s', 'val_loss']);

/** The TensorBoard scalars of one metrics.jsonl line. */
export function metricScalars(m: MetricLine): Record<string, number> {
  const s: Record<string, number> = {
    'train/loss': m.loss, 'train/learning_rate': m.lr, 'train/grad_norm': m.grad_norm,
    'train/tokens': m.tokens, 'train/tokens_per_s': m.tokens_per_s,
  };
  if (m.val_loss !== undefined) s['val/loss'] = m.val_loss;
  // a task's further numbers (DPO: rewards/*, logps/*), validation ones under val/
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'number' || CORE_KEYS.has(k)) continue;
    s[k.startsWith('val_') ? `val/${k.slice(4)}` : `train/${k}`] = v;
  }
  for (const [task, r] of Object.entries(m.eval ?? {})) {
    for (const [k, v] of Object.entries(r)) if (!k.endsWith('_stderr') && k !== 'n') s[`eval/${task}/${k}`] = v;
  }
  return s;
}

// ------------------------------------------------------------------------------- the writer

export class TensorBoardWriter {
  private constructor(readonly file: string, private fd: number | null) {}

  /**
   * The run's event file. `keepUpTo` null: a fresh run (old event files are removed). A step:
   * a resumed run; events up to that step are carried over from the old files.
   */
  static open(dir: string, keepUpTo: number | null): TensorBoardWriter {
    const old = eventFiles(dir);
    const kept: DecodedEvent[] = [];
    if (keepUpTo !== null) {
      for (const f of old) {
        let events: DecodedEvent[];
        // A damaged old file loses its curves in TensorBoard, never the run.
        try { events = readEventFile(f); } catch { continue; }
        for (const e of events) if (e.scalars && e.step <= keepUpTo) kept.push(e);
      }
      kept.sort((a, b) => a.step - b.step || a.wallTime - b.wallTime);
    }
    const now = Date.now() / 1000;
    const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'localhost';
    let file: string;
    for (let i = 0; ; i++) {
      file = path.join(dir, `${EVENT_FILE_PREFIX}${Math.floor(now)}.${host}.${process.pid}.${i}`);
      if (!old.includes(file) && !fs.existsSync(file)) break;
    }
    const records = [encodeVersionEvent(now), ...kept.map((e) => encodeScalarEvent({ step: e.step, wallTime: e.wallTime, scalars: e.scalars! }))].map(encodeRecord);
    writeFileAtomicSync(file, Buffer.concat(records));
    for (const f of old) fs.rmSync(f, { force: true });
    return new TensorBoardWriter(file, fs.openSync(file, 'a'));
  }

  write(e: ScalarEvent): void {
    if (this.fd === null) throw new OpenELMError('usage', `${this.file} is closed`);
    fs.writeSync(this.fd, encodeRecord(encodeScalarEvent(e)));
  }

  /** One metrics.jsonl line as one event, stamped now. */
  writeMetrics(m: MetricLine): void {
    this.write({ step: m.step, wallTime: Date.now() / 1000, scalars: metricScalars(m) });
  }

  close(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
  }
}
