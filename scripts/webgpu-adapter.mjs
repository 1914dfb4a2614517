// Says which WebGPU adapter Dawn (the optional npm package `webgpu`) finds here, and exits 0 when
// there is one, 1 when not. CI uses it to decide whether the WebGPU tests are required.
//
//   node scripts/webgpu-adapter.mjs
// For SwiftShader (a CPU Vulkan driver in Debian's chromium package) run it with
//   LD_LIBRARY_PATH=/usr/lib/chromium VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json

let create;
try {
  ({ create } = await import('webgpu'));
} catch (e) {
  console.log(`webgpu-adapter: the npm package "webgpu" is not installed (${e.message.split('\n')[0]})`);
  process.exit(1);
}
const gpu = create([]);
const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
if (!adapter) {
  console.log('webgpu-adapter: none found');
  process.exit(1);
}
const i = adapter.info;
const features = ['shader-f16', 'subgroups'].filter((f) => adapter.features.has(f));
console.log(`webgpu-adapter: ${i.vendor} ${i.architecture} "${i.description}"${i.isFallbackAdapter ? ' (software)' : ''}; ` +
  `features: ${features.join(', ') || 'none of shader-f16, subgroups'}`);
process.exit(0);
