/// <reference types="@webgpu/types" />
// Getting a WebGPU device: `navigator.gpu` where the runtime has one (browsers, Deno), else Dawn
// through the optional npm package `webgpu` (Node). Never falls back to the CPU on its own: no
// adapter is an error that says how to get one.

import { OpenELMError } from '../../core/errors.js';

/** What the kernels may use on this device. */
export interface GpuFeatures {
  /** `shader-f16`: f16 arithmetic in WGSL (f16 weights are read on every device). */
  f16: boolean;
  /**
   * `subgroups` plus the WGSL language features `subgroup_id` (subgroups indexed without assuming
   * their layout) and `subgroup_uniformity` (subgroup operations in loops whose bounds are uniform
   * per subgroup only): subgroup-wide reductions.
   */
  subgroups: boolean;
}

export interface GpuAdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  /** A CPU implementation (SwiftShader, WARP, lavapipe): correct but slow; `auto` never picks it. */
  software: boolean;
}

export interface GpuHandle {
  device: GPUDevice;
  adapter: GpuAdapterSummary;
  features: GpuFeatures;
  /** Subgroup sizes the adapter reports (0 when unknown). */
  subgroupMin: number;
  subgroupMax: number;
}

export interface AcquireOptions {
  powerPreference?: GPUPowerPreference;
  /** Turn off optional features (tests run every variant on one adapter). */
  disable?: readonly (keyof GpuFeatures)[];
  /** A GPU object to use instead of looking for one (a browser's navigator.gpu, a test double). */
  gpu?: GPU;
}

const SOFTWARE_ADAPTER_HINT = 'for a software adapter on Debian/Ubuntu: apt-get install chromium, then run with ' +
  'LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json';

// Dawn's instance must outlive every device made from it (a collected instance takes its event
// loop along and the next mapAsync crashes the process), so the one instance is kept here.
let dawn: GPU | null = null;

/** The `GPU` entry point of this runtime, or an error saying what is missing. */
export async function findGpu(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (dawn) return dawn;
  // A computed specifier keeps bundlers from pulling the Node-only package into browser builds.
  const pkg = 'webgpu';
  let mod: { create(flags: string[]): GPU };
  try {
    mod = await import(pkg) as { create(flags: string[]): GPU };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new OpenELMError('webgpu', `the webgpu backend needs WebGPU: in Node install the optional package "webgpu" ` +
      `(npm install webgpu), or use a browser with WebGPU (${why})`);
  }
  dawn = mod.create([]);
  return dawn;
}

function adapterSummary(a: GPUAdapter): GpuAdapterSummary {
  const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (a as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const text = `${info.vendor} ${info.architecture} ${info.description}`.toLowerCase();
  const software = info.isFallbackAdapter === true || legacy === true ||
    /swiftshader|llvmpipe|lavapipe|microsoft basic render|warp/.test(text);
  return { vendor: info.vendor, architecture: info.architecture, description: info.description, software };
}

/** Every limit the adapter offers (the defaults are far below what a model needs). */
function adapterLimits(a: GPUAdapter): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['maxBufferSize', 'maxStorageBufferBindingSize', 'maxComputeWorkgroupStorageSize',
    'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX', 'maxStorageBuffersPerShaderStage',
    'maxComputeWorkgroupsPerDimension'] as const) {
    const v = a.limits[k];
    if (typeof v === 'number') out[k] = v;
  }
  return out;
}

export async function acquireGpu(opts: AcquireOptions = {}): Promise<GpuHandle> {
  const gpu = opts.gpu ?? await findGpu();
  const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
  if (!adapter) {
    throw new OpenELMError('webgpu', `no WebGPU adapter found: install a GPU driver with Vulkan, Metal or D3D12 support, or ${SOFTWARE_ADAPTER_HINT}`);
  }
  const off = new Set(opts.disable ?? []);
  const wgsl = (gpu as GPU & { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures;
  const features: GpuFeatures = {
    f16: !off.has('f16') && adapter.features.has('shader-f16'),
    subgroups: !off.has('subgroups') && adapter.features.has('subgroups') &&
      wgsl?.has('subgroup_id') === true && wgsl.has('subgroup_uniformity'),
  };
  const requiredFeatures: GPUFeatureName[] = [];
  if (features.f16) requiredFeatures.push('shader-f16');
  if (features.subgroups) requiredFeatures.push('subgroups' as GPUFeatureName);
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits: adapterLimits(adapter) });
  } catch (e) {
    throw new OpenELMError('webgpu', `the WebGPU adapter "${adapterSummary(adapter).description}" refused a device: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  return { device, adapter: adapterSummary(adapter), features, subgroupMin: info.subgroupMinSize ?? 0, subgroupMax: info.subgroupMaxSize ?? 0 };
}

/** Whether a hardware (not software) WebGPU adapter is present; never throws. Used by `--backend auto`. */
export async function hardwareGpuAvailable(): Promise<boolean> {
  try {
    const gpu = await findGpu();
    const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    return a !== null && !adapterSummary(a).software;
  } catch {
    return false;
  }
}

// GPUBufferUsage / GPUMapMode / GPUShaderStage values from the WebGPU spec, so that nothing relies on
// the globals a runtime may or may not install.
export const BufferUsage = {
  MAP_READ: 0x1, MAP_WRITE: 0x2, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80,
} as const;
export const MapMode = { READ: 0x1, WRITE: 0x2 } as const;
export const ShaderStage = { COMPUTE: 0x4 } as const;
