/// <reference types="@webgpu/types" />
// Compiled pipelines per kernel variant and aliasing pattern, bind group layouts per binding shape,
// and bind groups per set of buffers. A decode step binds the same pooled buffers every time, so
// after the first step nothing here is created again.

import type { GpuBuf } from './buffer-pool.js';
import { PARAM_SLOT, assembleShader, layoutKey, type KernelSpec } from './kernel.js';
import { ShaderStage } from './device.js';

export interface Compiled {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  layoutKey: string;
}

export class PipelineCache {
  private pipelines = new Map<string, Compiled>();
  private layouts = new Map<string, GPUBindGroupLayout>();
  private groups = new Map<string, GPUBindGroup>();
  /** Bind group keys per buffer id, so destroying a buffer drops the groups that name it. */
  private byBuffer = new Map<number, string[]>();
  /** Shader sources by pipeline key, for error messages. */
  readonly sources = new Map<string, string>();
  compiled = 0;

  constructor(private readonly device: GPUDevice) {}

  get(k: KernelSpec, slots: readonly number[], pattern: string): Compiled {
    const key = pattern ? `${k.key}#${pattern}` : k.key;
    let c = this.pipelines.get(key);
    if (c) return c;
    const nslots = slots.length ? Math.max(...slots) + 1 : 0;
    const lk = layoutKey(k, nslots);
    const layout = this.layout(lk, !!k.host, nslots, k.weights?.length ?? 0);
    const code = assembleShader(k, slots);
    this.sources.set(key, code);
    const module = this.device.createShaderModule({ code, label: key });
    const pipeline = this.device.createComputePipeline({
      label: key,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    c = { pipeline, layout, layoutKey: lk };
    this.pipelines.set(key, c);
    this.compiled++;
    return c;
  }

  private layout(key: string, host: boolean, tensors: number, weights: number): GPUBindGroupLayout {
    let l = this.layouts.get(key);
    if (l) return l;
    const entries: GPUBindGroupLayoutEntry[] = [
      { binding: 0, visibility: ShaderStage.COMPUTE, buffer: { type: 'uniform', hasDynamicOffset: true, minBindingSize: PARAM_SLOT } },
    ];
    let b = 1;
    if (host) entries.push({ binding: b++, visibility: ShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } });
    for (let i = 0; i < tensors; i++) entries.push({ binding: b++, visibility: ShaderStage.COMPUTE, buffer: { type: 'storage' } });
    for (let i = 0; i < weights; i++) entries.push({ binding: b++, visibility: ShaderStage.COMPUTE, buffer: { type: 'read-only-storage' } });
    l = this.device.createBindGroupLayout({ entries, label: key });
    this.layouts.set(key, l);
    return l;
  }

  /** The bind group of `bufs` in binding order; the first is the uniform block, bound PARAM_SLOT wide. */
  bindGroup(c: Compiled, bufs: readonly GpuBuf[]): GPUBindGroup {
    let key = c.layoutKey;
    for (const b of bufs) key += ',' + b.id;
    let g = this.groups.get(key);
    if (g) return g;
    g = this.device.createBindGroup({
      layout: c.layout,
      entries: bufs.map((b, i) => ({ binding: i, resource: i === 0 ? { buffer: b.buffer, size: PARAM_SLOT } : { buffer: b.buffer } })),
    });
    this.groups.set(key, g);
    for (const b of bufs) {
      let list = this.byBuffer.get(b.id);
      if (!list) { list = []; this.byBuffer.set(b.id, list); }
      list.push(key);
      // Long-lived buffers (the uniform block) collect keys of groups dropped with other buffers.
      if (list.length % 256 === 0) { list = list.filter((k) => this.groups.has(k)); this.byBuffer.set(b.id, list); }
    }
    return g;
  }

  /** Forget the bind groups of a buffer about to be destroyed. */
  dropBuffer(b: GpuBuf): void {
    const list = this.byBuffer.get(b.id);
    if (!list) return;
    for (const k of list) this.groups.delete(k);
    this.byBuffer.delete(b.id);
  }

  get bindGroupCount(): number { return this.groups.size; }
}
