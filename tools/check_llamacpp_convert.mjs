// llama.cpp's own converter on a config.json openelm writes: a small random model whose config
// gives the multipliers as (min, max) ranges (as presets and recipes do) is saved by openelm,
// converted by convert_hf_to_gguf.py (f32), and the GGUF's logits are compared with the folder's.
// Needs the build (npm run build), a llama.cpp checkout and a Python with its gguf-py requirements.
//
//   node tools/check_llamacpp_convert.mjs LLAMA_CPP_DIR [PYTHON] [WORK_DIR]

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadModel, resolveConfig } from '../dist/src/index.js';
import { paramLayout } from '../dist/src/model/layout.js';
import { initParams } from '../dist/src/model/init.js';
import { saveModel } from '../dist/src/io/model-folder.js';

const [llama, python = 'python3', work = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-llamacpp-'))] = process.argv.slice(2);
if (!llama) { console.error('usage: node tools/check_llamacpp_convert.mjs LLAMA_CPP_DIR [PYTHON] [WORK_DIR]'); process.exit(2); }
const repo = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// OpenELM's ranges and divisor rules at a small width; the real 32000-piece tokenizer
const config = resolveConfig({
  model_type: 'openelm', architectures: ['OpenELMForCausalLM'], num_transformer_layers: 6, model_dim: 128, head_dim: 16,
  num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 64, vocab_size: 32000,
  max_context_length: 128, rope_freq_constant: 10000, rope_max_length: 4096, bos_token_id: 1, eos_token_id: 2,
});
const dir = path.join(work, 'model');
fs.mkdirSync(dir, { recursive: true });
const layout = paramLayout(config);
const host = new Float32Array(layout.total);
initParams(config, layout, host, 7, { normJitter: 0.1 });
saveModel(dir, config, layout, host);
fs.copyFileSync(path.join(repo, 'assets', 'tokenizer', 'tokenizer.model'), path.join(dir, 'tokenizer.model'));
const written = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
console.log(`config.json: qkv_multipliers ${JSON.stringify(written.qkv_multipliers)}, ffn_multipliers ${JSON.stringify(written.ffn_multipliers)}, num_query_heads ${JSON.stringify(written.num_query_heads)}`);

const gguf = path.join(work, 'model-f32.gguf');
const conv = spawnSync(python, [path.join(llama, 'convert_hf_to_gguf.py'), dir, '--outfile', gguf, '--outtype', 'f32'], {
  encoding: 'utf8', env: { ...process.env, PYTHONPATH: path.join(llama, 'gguf-py') },
});
if (conv.status !== 0) { console.error(conv.stdout + conv.stderr); console.error('convert_hf_to_gguf.py failed'); process.exit(1); }
console.log(`convert_hf_to_gguf.py wrote ${gguf} (${fs.statSync(gguf).size} bytes)`);

const a = await loadModel(dir, { backend: 'js', dtype: 'f32' });
const b = await loadModel(gguf, { backend: 'js', dtype: 'f32' });
const ids = a.encode('The quick brown fox jumps over the lazy dog, and then');
const la = await a.model.logitsAll(ids), lb = await b.model.logitsAll(ids);
let max = 0;
for (let i = 0; i < la.length; i++) max = Math.max(max, Math.abs(la[i] - lb[i]));
const sameIds = JSON.stringify(b.encode('The quick brown fox')) === JSON.stringify(a.encode('The quick brown fox'));
console.log(`${ids.length} tokens × ${config.vocabSize}: max |logit(folder) − logit(gguf)| = ${max}; GGUF tokenizer ${sameIds ? 'agrees' : 'DISAGREES'}`);
a.dispose(); b.dispose();
process.exit(max <= 1e-5 && sameIds ? 0 : 1);
