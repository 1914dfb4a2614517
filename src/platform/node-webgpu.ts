// WebGPU in Node.js: Dawn, Chromium's implementation, from the optional npm package `webgpu`.
//
// On Linux Dawn reaches GPUs through the Vulkan loader (libvulkan.so.1) and the drivers it lists
// (ICD manifests). When either is missing, Dawn prints warnings on stdout while it looks for
// adapters, which would end up in a command's output (JSON, generated text); so both are looked for
// first, the way the loader looks for them, and Dawn is not started when there are none.

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

/**
 * Whether the Vulkan loader would find a driver manifest: the files VK_DRIVER_FILES /
 * VK_ICD_FILENAMES name when set, else *.json in the icd.d folders of the XDG and system paths.
 */
export function vulkanDriverListed(env: NodeJS.ProcessEnv = process.env): boolean {
  const named = env.VK_DRIVER_FILES || env.VK_ICD_FILENAMES;
  if (named) return named.split(':').some((f) => f !== '' && fs.existsSync(f));
  const roots = [env.XDG_CONFIG_HOME, ...(env.XDG_CONFIG_DIRS ?? '/etc/xdg').split(':'), '/etc',
    env.XDG_DATA_HOME, ...(env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':')];
  for (const r of roots) {
    if (!r) continue;
    try {
      if (fs.readdirSync(path.join(r, 'vulkan', 'icd.d')).some((f) => f.endsWith('.json'))) return true;
    } catch { /* no such folder */ }
  }
  return false;
}

// Dawn's instance must outlive every device made from it (a collected instance takes its event
// loop along and the next mapAsync aborts the process), so the one instance is kept here.
let dawn: unknown = null;

/** The Platform.webgpu hook of Node: Dawn's GPU object, or why there is none. */
export async function nodeWebGpu(): Promise<{ gpu: unknown } | { gpu: null; why: string }> {
  if (dawn) return { gpu: dawn };
  if (process.platform === 'linux') {
    if (!vulkanLoaderPresent()) return { gpu: null, why: `no Vulkan loader (libvulkan.so.1) on this machine: ${VULKAN_HINT}` };
    if (!vulkanDriverListed()) return { gpu: null, why: `no Vulkan driver is installed (no ICD manifest in vulkan/icd.d, or VK_ICD_FILENAMES names none that exists): ${VULKAN_HINT}` };
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
