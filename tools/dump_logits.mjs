// Our engine's logits for a model folder, for tools/crosscheck_hf.py --check-dir.
//   node tools/dump_logits.mjs MODEL_DIR OUT.json [ids, comma-separated]
// Needs `npm run build` first. Runs the plain-JS backend in float32 (weights as stored).
import * as fs from 'node:fs';
import { loadModelFolder, JsBackend } from '../dist/src/index.js';

const [dir, out, idsArg] = process.argv.slice(2);
if (!dir || !out) { console.error('usage: node tools/dump_logits.mjs MODEL_DIR OUT.json [ids]'); process.exit(2); }
const ids = (idsArg ?? '1,450,3681,263,931,29892,727,471').split(',').map(Number);
const model = loadModelFolder(dir, { backend: new JsBackend() });
const logits = model.logitsAll(ids);
fs.writeFileSync(out, JSON.stringify({ ids, vocab: model.config.vocabSize, logits: Array.from(logits) }));
console.log(`wrote ${out}: ${ids.length} positions × ${model.config.vocabSize}`);
