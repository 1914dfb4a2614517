// Download a model from the Hugging Face hub into the shared HF cache (HF_HOME / HF_HUB_CACHE),
// resuming an interrupted download; prints the local folder. Set HF_TOKEN for gated repos and
// HF_HUB_OFFLINE=1 to use only what is cached.
//   node dist/test/examples/download.js [hub id]
import { ensureModel } from 'openelm';

const id = process.argv[2] ?? 'apple/OpenELM-270M-Instruct';
const folder = await ensureModel(id, {
  onProgress: (p) => { if (p.done) console.error(`${p.file}: ${p.downloaded} bytes`); },
});
console.log(folder);
