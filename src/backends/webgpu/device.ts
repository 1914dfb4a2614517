/// <reference types="@webgpu/types" />
// Getting a WebGPU device: `navigator.gpu` where the runtime has one (browsers, Deno), else the
// platform's (Node: Dawn through the optional npm package `webgpu`). Never falls back to the CPU on
// its own: no adapter is an error that says how to get one.

import { OpenELMError } from '../../core/errors.js';
import { getPlatform, type Platform } from '../../platform/platform.js';

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
  /**
   * Ask for a device with these limits below the adapter's (bytes; to leave room for other work on
   * the GPU, or to test how a load meets a smaller device). WebGPU never goes below its defaults
   * (256 MiB and 128 MiB), so smaller values get those.
   */
  limits?: GpuLimits;
}

/** The buffer limits a device may be asked for below its adapter's. */
export interface GpuLimits {
  maxBufferSize?: number;
  maxStorageBufferBindingSize?: number;
}

const ADAPTER_HINT = 'install a GPU driver with Vulkan, Metal or D3D12 support, or for a software adapter on Debian/Ubuntu: ' +
  'apt-get install chromium, then run with LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json';
// A browser that has navigator.gpu but gives no adapter: WebGPU is turned off there, or the GPU or its
// driver is on the browser's blocklist (Chromium on Linux needs --enable-unsafe-webgpu today).
const BROWSER_ADAPTER_HINT = 'WebGPU is off in this browser or its GPU is blocklisted (chrome://gpu says which; ' +
  'Chromium on Linux needs --enable-unsafe-webgpu); use the wasm backend instead';

function navigatorGpu(): GPU | undefined {
  return (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu ?? undefined;
}

/** What to do about a GPU object that gave no adapter: a browser's settings, or a driver to install. */
const adapterHint = (gpu: GPU): string => (gpu === navigatorGpu() ? BROWSER_ADAPTER_HINT : ADAPTER_HINT);

/**
 * The `GPU` entry point of this runtime: `navigator.gpu` (browsers, Deno), else the platform's
 * (Node: Dawn, platform/node-webgpu.ts); an error saying what is missing otherwise.
 */
export async function findGpu(): Promise<GPU> {
  const nav = navigatorGpu();
  if (nav) return nav;
  let pf: Platform | null = null;
  try { pf = getPlatform(); } catch { /* no platform registered: no other way to a GPU */ }
  const got: { gpu: unknown; why?: string } = pf?.webgpu ? await pf.webgpu() : { gpu: null, why: 'this runtime has no navigator.gpu' };
  if (got.gpu === null) throw new OpenELMError('webgpu', `no WebGPU adapter found: ${got.why ?? 'none'}`);
  return got.gpu as GPU;
}

function adapterSummary(a: GPUAdapter): GpuAdapterSummary {
  const info = a.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const legacy = (a as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter;
  const text = `${info.vendor} ${info.architecture} ${info.description}`.toLowerCase();
  const software = info.isFallbackAdapter === true || legacy === true ||
    /swiftshader|llvmpipe|lavapipe|microsoft basic render|warp/.test(text);
  return { vendor: info.vendor, architecture: info.architecture, description: info.description, software };
}

/** WebGPU's default buffer limits: a device never has less. */
const DEFAULT_LIMITS: Record<keyof GpuLimits, number> = { maxBufferSize: 256 * 2 ** 20, maxStorageBufferBindingSize: 128 * 2 ** 20 };

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
  if (!adapter) throw new OpenELMError('webgpu', `no WebGPU adapter found: ${adapterHint(gpu)}`);
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
  const requiredLimits = adapterLimits(adapter);
  for (const [k, v] of Object.entries(opts.limits ?? {}) as [keyof GpuLimits, number | undefined][]) {
    if (v === undefined) continue;
    if (!(Number.isInteger(v) && v > 0)) throw new OpenELMError('usage', `the GPU limit ${k} must be a whole number of bytes > 0, got ${v}`);
    const floor = DEFAULT_LIMITS[k];
    if (k in requiredLimits) requiredLimits[k] = Math.max(floor, Math.min(requiredLimits[k], v));
  }
  // one binding cannot be larger than a buffer
  if (requiredLimits.maxStorageBufferBindingSize > requiredLimits.maxBufferSize) requiredLimits.maxStorageBufferBindingSize = requiredLimits.maxBufferSize;
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures, requiredLimits });
  } catch (e) {
    throw new OpenELMError('webgpu', `the WebGPU adapter "${adapterSummary(adapter).description}" refused a device: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const info = adapter.info as GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number };
  return { device, adapter: adapterSummary(adapter), features, subgroupMin: info.subgroupMinSize ?? 0, subgroupMax: info.subgroupMaxSize ?? 0 };
}

let shared: Promise<GpuHandle> | null = null;

/**
 * One device per process for the backends that do not need their own: pipelines compile once (a
 * shader compile is slow, on software adapters very slow). A lost device is replaced on next use.
 */
export function sharedGpu(): Promise<GpuHandle> {
  if (shared) return shared;
  const p = acquireGpu();
  shared = p;
  p.then((h) => h.device.lost.then(() => { if (shared === p) shared = null; }), () => { if (shared === p) shared = null; });
  return p;
}

/** The adapter this runtime would use, or why there is none; never throws. */
export async function probeAdapter(): Promise<{ adapter: GpuAdapterSummary } | { adapter: null; why: string }> {
  try {
    const gpu = await findGpu();
    const a = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!a) return { adapter: null, why: `no WebGPU adapter found: ${adapterHint(gpu)}` };
    return { adapter: adapterSummary(a) };
  } catch (e) {
    return { adapter: null, why: e instanceof Error ? e.message : String(e) };
  }
}

let hardware: Promise<boolean> | null = null;

/** Whether a hardware (not software) WebGPU adapter is present (asked once per process); `--backend auto` uses it. */
export function hardwareGpuAvailable(): Promise<boolean> {
  hardware ??= probeAdapter().then((p) => p.adapter !== null && !p.adapter.software);
  return hardware;
}

// GPUBufferUsage / GPUMapMode / GPUShaderStage values from the WebGPU spec, so that nothing relies on
// the globals a runtime may or may not install.
export const BufferUsage = {
  MAP_READ: 0x1, MAP_WRITE: 0x2, COPY_SRC: 0x4, COPY_DST: 0x8, UNIFORM: 0x40, STORAGE: 0x80,
} as const;
export const MapMode = { READ: 0x1, WRITE: 0x2 } as const;
export const ShaderStage = { COMPUTE: 0x4 } as const;
