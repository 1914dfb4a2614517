// How the backend factory (backends/index.ts) makes the webgpu backend: `--backend webgpu` takes
// whatever adapter there is (software ones included) or fails with one line saying how to get one;
// `--backend auto` prefers it only when the adapter is real hardware. The kernels load on first use.

import type { Backend } from '../backend.js';
import { hardwareGpuAvailable } from './device.js';

export const webgpuProvider = {
  async make(): Promise<Backend> {
    const { WebGPUBackend } = await import('./webgpu-backend.js');
    return WebGPUBackend.create();
  },
  preferred: (): Promise<boolean> => hardwareGpuAvailable(),
};
