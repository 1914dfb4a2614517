// Models past one WebAssembly memory on the default engine (a script, not a test: the checkpoints
// are GBs). Runs a folder written by tools/big_models.py on the WASM backend and compares with the
// PyTorch reference recorded beside it (reference.json): greedy ids, decode speed and the bandwidth
// it implies (bytes of weights streamed per token × tokens/s), the number of wasm memories used,
// and peak RSS against the weights plus KV cache. Prints one JSON object.
//
// --train replays the two AdamW steps tools/big_models.py --train recorded (the same batch, lr,
// betas, weight decay, clipping and z-loss) with f32 parameters, gradients and moments in chunks
// over several wasm memories: both losses beside PyTorch's, the gradient norms, peak RSS beside
// PyTorch's for the same steps, the memories used and the step times. With --checkpoint DIR it then
// writes a training checkpoint there (streamed tensor by tensor) and reports the RSS after it; with
// --resume-check it then zeroes the parameters and moments, reads the checkpoint back into them (as
// --resume does, tensor by tensor) and reports whether the state's sha256 is the one before.
//
//   npx tsc -p tsconfig.json && node dist/bench/big-models.js --model /tmp/openelm-3b-bf16 [--dtype auto] [--threads 2] [--tokens 16]
//   node dist/bench/big-models.js --model /tmp/openelm-1_1b-f32 --train [--threads 2] [--checkpoint /tmp/ck [--resume-check]]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchArgs } from './args.js';
import { loadModel } from '../src/api.js';
import { weightsBytes } from '../src/model/openelm.js';
import { kvValuesPerToken } from '../src/model/config.js';
import type { LoadDType } from '../src/model/load.js';
import { WasmBackend, createBackend } from '../src/backends/index.js';
import { peakRssKb } from '../src/platform/node.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { readModelConfig } from '../src/io/model-folder.js';
import { parameterCount } from '../src/model/config.js';
import { TrainableModel } from '../src/model/trainable.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { STATE_VERSION, readCheckpointInto, writeCheckpoint } from '../src/train/state.js';
import { createHash } from 'node:crypto';

const { values: args } = benchArgs({
  options: {
    model: { type: 'string' },
    dtype: { type: 'string', default: 'auto' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    tokens: { type: 'string', default: '16' },
    train: { type: 'boolean', default: false },
    checkpoint: { type: 'string' },
    'resume-check': { type: 'boolean', default: false },
  },
});
if (!args.model) throw new Error('--model DIR is required (a folder from tools/big_models.py)');
const gb = (bytes: number) => +(bytes / 1e9).toFixed(3);
const peakRss = () => peakRssKb() * 1024;
if (args.train) {
  await train(args.model);
  process.exit(0);
}
const ref = JSON.parse(fs.readFileSync(path.join(args.model, 'reference.json'), 'utf8')) as { prompt: number[]; greedy: number[]; greedy_gaps: number[] };

const t0 = performance.now();
const m = await loadModel(args.model, { backend: 'wasm', dtype: args.dtype as LoadDType, threads: Number(args.threads) });
await m.backend.sync();
const loadS = (performance.now() - t0) / 1000;
const rssAfterLoad = process.memoryUsage().rss;

// greedy against the reference (the reference's own top-1/top-2 gaps say how decisive each step is)
const g = await m.generate(ref.prompt, { maxTokens: ref.greedy.length, temperature: 0, repetitionPenalty: 1, ignoreEos: true });
const same = g.ids.length === ref.greedy.length && g.ids.every((t, i) => t === ref.greedy[i]);

// decode speed: one token at a time after a short prefill
const n = Number(args.tokens);
const cache = m.model.newCache(ref.prompt.length + n + 1);
await m.model.forward([{ cache, tokens: ref.prompt }]);
let tok = ref.greedy[0];
const t1 = performance.now();
for (let i = 0; i < n; i++) {
  const { logits, rows } = m.model.forwardDevice([{ cache, tokens: [tok] }]);
  tok = (await m.backend.argmax(logits, rows, m.config.vocabSize))[0];
}
const decodeS = (performance.now() - t1) / 1000;
const weights = weightsBytes(m.model.weights);
const kv = kvValuesPerToken(m.config) * cache.capacity * 4;
const peak = peakRssKb() * 1024;
console.log(JSON.stringify({
  model: args.model, dtype: m.model.weights.layers[0].qkv.dtype, engine: m.backend.describe(),
  memory: m.backend.memory(), load_s: +loadS.toFixed(1),
  greedy_ours: g.ids, greedy_reference: ref.greedy, greedy_equal: same, reference_min_gap: Math.min(...ref.greedy_gaps),
  decode_tok_s: +(n / decodeS).toFixed(3), weights_gb: +(weights / 1e9).toFixed(3),
  decode_gb_s: +((weights * n) / decodeS / 1e9).toFixed(2),
  rss_after_load_gb: +(rssAfterLoad / 1e9).toFixed(3), peak_rss_gb: +(peak / 1e9).toFixed(3),
  peak_over_weights_kv: +(peak / (weights + kv)).toFixed(3),
  loadavg: os.loadavg().map((x) => +x.toFixed(2)),
}));
cache.dispose();
m.dispose();

interface TrainRecord {
  losses: number[]; grad_norms: number[]; inputs: number[]; targets: number[]; B: number; T: number;
  lr: number; betas: number[]; eps: number; weight_decay: number; clip: number; z_loss: number;
  peak_rss_gb?: number; step_s?: number[]; threads?: number; torch?: string;
}

/** The two recorded AdamW steps on the wasm backend, compared with PyTorch's. */
async function train(dir: string): Promise<void> {
  const rec = (JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as { train?: TrainRecord }).train;
  if (!rec) throw new Error(`${dir}/reference.json has no "train" record: write it with tools/big_models.py --train`);
  const config = readModelConfig(dir);
  const be = await createBackend('wasm', { threads: Number(args.threads) });
  const t0 = performance.now();
  const model = new TrainableModel(config, be);
  // the stored weights, one tensor at a time
  const ck = openCheckpoint(dir);
  try {
    for (const e of model.layout.entries) {
      ck.expectShape(e.name, e.shape);
      model.setParam(e.name, ck.readF32(e.name));
    }
  } finally { ck.close(); }
  const opt = new AdamW(be, model.layout, { beta1: rec.betas[0], beta2: rec.betas[1], eps: rec.eps, weightDecay: rec.weight_decay, placement: 'backend' });
  await be.sync();
  const loadS = (performance.now() - t0) / 1000;
  const inputs = Int32Array.from(rec.inputs), targets = Int32Array.from(rec.targets);
  const losses: number[] = [], norms: number[] = [], stepS: number[] = [];
  for (let s = 0; s < rec.losses.length; s++) {
    const t1 = performance.now();
    model.zeroGrad();
    losses.push((await model.forwardBackward(inputs, targets, rec.B, rec.T, { zLoss: rec.z_loss })).loss);
    norms.push(await clipGradNorm(be, model.gradChunks, rec.clip));
    await opt.update(model.paramChunks, model.gradChunks, rec.lr);
    stepS.push(+((performance.now() - t1) / 1000).toFixed(2));
  }
  const peakTrain = peakRss();
  const rel = losses.map((l, i) => Math.abs(l - rec.losses[i]) / Math.abs(rec.losses[i]));
  const state = be.memory();
  const out: Record<string, unknown> = {
    model: dir, parameters: parameterCount(config), engine: be.describe(), batch: `${rec.B} x ${rec.T}`,
    losses_ours: losses, losses_pytorch: rec.losses, losses_rel_diff: rel.map((r) => +r.toExponential(2)), losses_within_1e4: rel.every((r) => r <= 1e-4),
    grad_norms_ours: norms, grad_norms_pytorch: rec.grad_norms,
    chunks: model.paramChunks.chunks.length, wasm_memories: be instanceof WasmBackend ? be.memoryCount : null,
    backend_in_use_gb: gb(state.inUse), backend_reserved_gb: gb(state.reserved),
    state_gb: gb(4 * 4 * model.layout.total), load_s: +loadS.toFixed(1), step_s: stepS,
    peak_rss_gb: gb(peakTrain), peak_rss_pytorch_gb: rec.peak_rss_gb ?? null, step_s_pytorch: rec.step_s ?? null,
    pytorch: rec.torch ?? null, pytorch_threads: rec.threads ?? null, threads: be.threads,
  };
  if (args.checkpoint) {
    // a training checkpoint of the trained state, streamed as the trainer writes it
    const t2 = performance.now();
    const written = await writeCheckpoint(args.checkpoint, {
      config, layout: model.layout, params: (e) => model.readParam(e.name),
      opt: { step: opt.step, m: (o, n) => opt.readMoment('m', o, n), v: (o, n) => opt.readMoment('v', o, n) },
      state: { version: STATE_VERSION, step: opt.step, tokens: 0, interval: { lossSum: 0, steps: 0, tokens: 0, ms: 0 }, data: null, recipe: {}, trainMs: 0, savedAt: new Date().toISOString() },
      dataTensors: {},
    }, 1);
    out.checkpoint = written;
    out.checkpoint_s = +((performance.now() - t2) / 1000).toFixed(1);
    out.peak_rss_after_checkpoint_gb = gb(peakRss());
    if (args['resume-check']) {
      // the whole training state's digest, read a tensor (a slice of the moments) at a time
      const total = model.layout.total, S = 1 << 24;
      const digest = async (): Promise<string> => {
        const h = createHash('sha256');
        for (const e of model.layout.entries) h.update(new Uint8Array((await model.readParam(e.name)).buffer));
        for (const w of ['m', 'v'] as const) for (let o = 0; o < total; o += S) h.update(new Uint8Array((await opt.readMoment(w, o, Math.min(S, total - o))).buffer));
        return h.digest('hex');
      };
      const before = await digest();
      model.paramChunks.fill(0);
      const zeros = new Float32Array(Math.min(S, total));
      for (const w of ['m', 'v'] as const) for (let o = 0; o < total; o += S) opt.writeMoment(w, o, zeros.subarray(0, Math.min(S, total - o)));
      const t3 = performance.now();
      const ck = readCheckpointInto(written, model.layout, {
        param: (e, values) => model.setParam(e.name, values),
        moment: (which, offset, values) => opt.writeMoment(which, offset, values),
      });
      opt.setStep(ck.optStep);
      out.resume_read_s = +((performance.now() - t3) / 1000).toFixed(1);
      out.resume_state_equal = (await digest()) === before;
      out.peak_rss_after_resume_gb = gb(peakRss());
    }
  }
  out.loadavg = os.loadavg().map((x) => +x.toFixed(2));
  console.log(JSON.stringify(out));
  opt.dispose();
  model.dispose();
  be.dispose();
}
