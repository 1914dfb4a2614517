// The check a row-range read makes before touching bytes (decoded-format and PyTorch tensor
// readers, pre-quantized folders); in core/ so readers the page bundles share it too.
import { OpenELMError } from './errors.js';

/**
 * Throws unless values [start, start + count) lie within a tensor's n values and a destination of
 * dstLength holds them; `subject` names the tensor in the one-line message.
 */
export function checkRange(subject: string, n: number, start: number, count: number, dstLength: number): void {
  if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= n)) {
    throw new OpenELMError('checkpoint', `${subject}: range [${start}, ${start + count}) is outside its ${n} values`);
  }
  if (dstLength < count) throw new OpenELMError('checkpoint', `${subject}: destination holds ${dstLength} values, needs ${count}`);
}
