// WebGPU in Node.js: Dawn, Chromium's implementation, from the optional npm package `webgpu`.
//
// On Linux Dawn reaches GPUs through the Vulkan loader (libvulkan.so.1). Without one, Dawn prints a
// warning on stdout while it looks for adapters, which would end up in a command's output (JSON,
// generated text), so the loader is looked for first and Dawn is not started when there is none.

import fs from 'node:fs';
import path from 'node:path';

const VULKAN_HINT = 'install a GPU driver with Vulkan (and the loader, libvulkan1), or for a software adapter on Debian/Ubuntu: ' +
  'apt-get install chromium, then run with LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json';

/** Whether the dynamic linker can find the Vulkan loader (LD_LIBRARY_PATH, the ld.so cache, the usual folders). */
export function vulkanLoaderPresent(env: NodeJS.ProcessEnv = process.env): boolean {
  const lib = 'libvulkan.so.1';
  for (const dir of (env.LD_LIBRARY_PATH ?? '').split(':')) if (dir && fs.existsSync(path.join(dir, lib))) return true;
  try {
    if (fs.readFileSync('/etc/ld.so.cache').includes(lib)) return true;
  } catch { /* no cache: look in the usual folders */ }
  return ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib64', '/lib']
    .some((d) => fs.existsSync(path.join(d, lib)));
}

// Dawn's instance must outlive every device made from it (a collected instance takes its event
// loop along and the next mapAsync aborts the process), so the one instance is kept here.
let dawn: unknown = null;

/** The Platform.webgpu hook of Node: Dawn's GPU object, or why there is none. */
export async function nodeWebGpu(): Promise<{ gpu: unknown } | { gpu: null; why: string }> {
  if (dawn) return { gpu: dawn };
  if (process.platform === 'linux' && !vulkanLoaderPresent()) {
    return { gpu: null, why: `no Vulkan loader (libvulkan.so.1) on this machine: ${VULKAN_HINT}` };
  }
  let mod: { create(flags: string[]): unknown };
  try {
    mod = await import('webgpu') as { create(flags: string[]): unknown };
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return { gpu: null, why: `the optional npm package "webgpu" (Dawn) is not installed: npm install webgpu (${why})` };
  }
  dawn = mod.create([]);
  return { gpu: dawn };
}
