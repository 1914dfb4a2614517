// openelm's side of tools/check_trained_adapter.py: the logits of a base model with an adapter
// (merged on load, f32, JS reference backend) on the ids of a prompt, written as safetensors
// {input_ids [T] I32, logits [T, V] F32}. Needs the build (npm run build).
//
//   node tools/adapted_logits.mjs BASE_DIR ADAPTER_DIR OUT.safetensors ["prompt text"]

import { loadModel } from '../dist/src/api.js';
import { writeSafetensorsSync } from '../dist/src/io/safetensors.js';

const [base, adapter, out, prompt = 'Below is an instruction that describes a task.'] = process.argv.slice(2);
if (!out) { console.error('usage: node tools/adapted_logits.mjs BASE_DIR ADAPTER_DIR OUT.safetensors ["prompt"]'); process.exit(2); }
const m = await loadModel(base, { adapter, dtype: 'f32', backend: 'js' });
const ids = m.encode(prompt);
const logits = await m.model.logitsAll(ids);
writeSafetensorsSync(out, [
  { name: 'input_ids', dtype: 'I32', shape: [ids.length], data: Int32Array.from(ids) },
  { name: 'logits', dtype: 'F32', shape: [ids.length, m.config.vocabSize], data: logits },
]);
console.log(`wrote ${out}: ${ids.length} tokens`);
m.dispose();
