// How the backend factory (backends/index.ts) makes the webgpu backend: `--backend webgpu` takes
// whatever adapter there is (software ones included) or fails with one line saying how to get one;
// `--backend auto` prefers it only when the adapter is real hardware. The kernels load on first use.

import type { Backend } from '../backend.js';
import { hardwareGpuAvailable, type GpuLimits } from './device.js';

export const webgpuProvider = {
  /** `gpuLimits`: a device of its own with these limits lowered (device.ts AcquireOptions.limits). */
  async make(opts: { gpuLimits?: GpuLimits } = {}): Promise<Backend> {
    const { WebGPUBackend } = await import('./webgpu-backend.js');
    return WebGPUBackend.create(opts.gpuLimits ? { acquire: { own: true, limits: opts.gpuLimits } } : {});
  },
  preferred: (): Promise<boolean> => hardwareGpuAvailable(),
};
