// Whether a model fits a device backend, as far as the device says. WebGPU exposes no free-memory
// figure, only limits (adapter.limits, then device.limits): a tensor is one buffer, and no buffer
// may be larger than maxBufferSize nor bound larger than maxStorageBufferBindingSize. So the
// largest tensor is checked against the smaller of the two before anything is allocated; whether
// the whole model fits is only known when an allocation fails (the runtime's out-of-memory error
// scope, or a lost device), which gpuLoadFailure turns into one line naming the model.

import type { BufferLimit, ConvertDType } from '../backends/backend.js';
import { weightBytes } from '../backends/weight-format.js';
import { OpenELMError } from '../core/errors.js';
import { formatBytes } from '../core/bytes.js';
import { numel, paramSpecs, type OpenELMConfig } from './config.js';

export interface BufferNeed {
  /** The tensor (checkpoint name). */
  name: string;
  shape: readonly number[];
  /** Its storage on the device (1-D tensors are f32). */
  dtype: ConvertDType;
  bytes: number;
}

/** Storage of 2-D weight `name` when the model loads as `dtype`. */
export type StorageOf = (name: string, dtype: ConvertDType | 'auto') => ConvertDType;

/**
 * Bytes of the device buffer of a tensor: its storage, rounded up to 16 bytes as the WebGPU runtime
 * does (which holds q4 with an f32 scale and min per block of 32: weights-wgsl.ts).
 */
function bufferBytes(shape: readonly number[], dtype: ConvertDType): number {
  const n = numel(shape);
  return Math.ceil((shape.length === 1 ? n * 4 : dtype === 'q4' ? n / 2 + n / 4 : weightBytes(dtype, n)) / 16) * 16;
}

/** The largest device buffer among the model's weights when it loads as `dtype`. */
export function largestBuffer(c: OpenELMConfig, dtype: ConvertDType | 'auto', storageOf: StorageOf): BufferNeed {
  let big: BufferNeed = { name: '', shape: [], dtype: 'f32', bytes: 0 };
  for (const p of paramSpecs(c)) {
    const d: ConvertDType = p.shape.length === 1 ? 'f32' : storageOf(p.name, dtype);
    const bytes = bufferBytes(p.shape, d);
    if (bytes > big.bytes) big = { name: p.name, shape: p.shape, dtype: d, bytes };
  }
  return big;
}

const NARROWER: readonly ConvertDType[] = ['bf16', 'q8', 'q4'];

/**
 * Throws one line when a weight of model `what` is larger than the largest buffer the device
 * allows: the tensor and its size, the limit, the device, and the dtypes that would fit.
 */
export function checkBufferLimit(what: string, c: OpenELMConfig, dtype: ConvertDType | 'auto', storageOf: StorageOf, lim: BufferLimit): void {
  const big = largestBuffer(c, dtype, storageOf);
  if (big.bytes <= lim.bytes) return;
  const fitting = NARROWER.filter((d) => weightBytes(d, 32) < weightBytes(big.dtype, 32))
    .map((d) => ({ d, bytes: largestBuffer(c, d, storageOf).bytes }))
    .filter((x) => x.bytes <= lim.bytes);
  const alt = fitting.length
    ? `it fits with dtype ${fitting.map((x) => `${x.d} (largest buffer ${formatBytes(x.bytes)})`).join(' or ')}, or on the wasm backend`
    : 'run it on the wasm backend';
  throw new OpenELMError('memory', `${what} does not fit this GPU: its largest tensor, ${big.name} (${big.shape.join('×')} ${big.dtype}), ` +
    `needs one buffer of ${formatBytes(big.bytes)}, more than the ${formatBytes(lim.bytes)} one buffer may take on ${lim.device} (${lim.limit}); ${alt}`);
}

/**
 * A failure while a model was put on a GPU (out of memory, a lost device) as one line naming the
 * model; the caller has freed what the load allocated. Other errors pass unchanged.
 */
export function gpuLoadFailure(what: string, e: unknown): unknown {
  if (!(e instanceof OpenELMError) || !['memory', 'device', 'webgpu'].includes(e.code)) return e;
  // the runtime's own advice is about training and generation; for a load there is this one
  const why = e.message.replace(/; (make the work smaller|results since the last read).*$/, '');
  return new OpenELMError(e.code, `${what} could not be loaded on the GPU (${why}); what it had allocated is freed: ` +
    'load it with a narrower dtype (q8, q4) or on the wasm backend');
}
