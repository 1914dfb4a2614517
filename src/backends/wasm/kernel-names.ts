// What a kernel worker needs to know of the kernels besides the compiled module it is handed: the
// chunked entry points by name, and the V8 flag of the relaxed build. Apart from kernels.ts, so that
// a worker thread never loads the base64 text of both builds (kernels.generated.ts): about 1 MiB
// of every worker's heap for nothing.

export const RELAXED_FLAG = '--experimental-wasm-relaxed-simd';

/** Entry points the pool runs chunk by chunk: `(argsPtr, tid, chunk, chunks) => void`. */
export const KERNEL_NAMES = ['k_linear', 'k_quant_rows', 'k_rmsnorm', 'k_qkrope', 'k_attention', 'k_swiglu', 'k_silu',
  'k_add', 'k_storekv', 'k_embedding', 'k_train', 'k_quantize'] as const;
export type KernelName = typeof KERNEL_NAMES[number];
