// Training runs that meet damage: checkpoints carry a manifest (sizes + sha256), `train --resume`
// falls back from a damaged newest checkpoint to the newest intact one with a warning naming both
// steps, and the run still ends byte-identical to an uninterrupted one. Checkpoints and skipped
// corrupt input lines are reported as they happen; a run folder works as --model.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { runCliAsync } from './helpers/cli-async.js';
import { checkpointProblem } from '../src/train/state.js';
import { loadModel } from '../src/api.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SHAKES = path.join(REPO, 'data/corpus/tinyshakespeare.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-train-resume-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A tiny recipe file in its own folder, its run in <folder>/out. */
function recipe(over: Record<string, unknown> = {}): { file: string; out: string } {
  const dir = path.join(tmp, `r${n++}`);
  fs.mkdirSync(dir);
  const out = path.join(dir, 'out');
  const file = path.join(dir, 'recipe.json');
  fs.writeFileSync(file, JSON.stringify({
    model: { config: { num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, ffn_dim_divisor: 32 } },
    seed: 5,
    data: { train: [{ path: SHAKES }], valid_fraction: 0.05, eval_batches: 1 },
    seq_len: 16, batch_size: 2, grad_accum: 1, steps: 12,
    pipeline: { mode: 'pack', split_words: 256, min_chars: 100, min_tokens: 32, shuffle_buffer: 16 },
    optimizer: { lr: 3e-3 }, schedule: { warmup_steps: 2 },
    out_dir: out, log_every: 2, eval_every: 6, checkpoint_every: 4,
    ...over,
  }));
  return { file, out };
}

const step = (out: string, s: number) => path.join(out, `step-${String(s).padStart(8, '0')}`);
const metrics = (out: string) => fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')
  .map((l) => { const { tokens_per_s: _t, ...rest } = JSON.parse(l) as Record<string, unknown>; return rest; });

test('checkpoints carry a manifest; resume falls back from a damaged newest checkpoint and ends byte-identical', async () => {
  const a = recipe();
  const ra = await runCliAsync(['train', '--recipe', a.file]);
  assert.equal(ra.status, 0, ra.stderr);

  const b = recipe();
  const first = await runCliAsync(['train', '--recipe', b.file, '--stop-after', '8']);
  assert.equal(first.status, 0, first.stderr);
  // The periodic checkpoint is reported when it is written, not only at the end.
  const ck4 = first.stderr.indexOf(`checkpoint: step 4 written to ${step(b.out, 4)}`);
  assert.ok(ck4 >= 0 && ck4 < first.stderr.indexOf('step 6/12'), first.stderr);

  const manifest = JSON.parse(fs.readFileSync(path.join(step(b.out, 8), 'manifest.json'), 'utf8')) as { step: number; files: Record<string, { bytes: number; sha256: string }> };
  assert.equal(manifest.step, 8);
  assert.deepEqual(Object.keys(manifest.files).sort(), ['config.json', 'data_state.safetensors', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
  for (const [f, e] of Object.entries(manifest.files)) {
    const bytes = fs.readFileSync(path.join(step(b.out, 8), f));
    assert.equal(e.bytes, bytes.length, f);
    assert.equal(e.sha256, createHash('sha256').update(bytes).digest('hex'), f);
  }

  // Damage the newest checkpoint: a truncated optimizer file.
  const opt = path.join(step(b.out, 8), 'optimizer.safetensors');
  fs.truncateSync(opt, fs.statSync(opt).size - 1000);
  assert.match(checkpointProblem(step(b.out, 8))!, /optimizer\.safetensors has \d+ bytes, the manifest says \d+/);
  const second = await runCliAsync(['train', '--recipe', b.file, '--resume']);
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stderr, /warning: checkpoint step-00000008 \(step 8\) is damaged: optimizer\.safetensors has \d+ bytes, the manifest says \d+; resuming from step 4 \(step-00000004\), the newest intact checkpoint, instead of step 8; the damaged folder is kept as step-00000008\.damaged/);
  assert.match(second.stderr, /resumed from .*step-00000004 at step 4\/12/);
  assert.ok(fs.existsSync(`${step(b.out, 8)}.damaged`));

  for (const f of ['model.safetensors', 'optimizer.safetensors', 'data_state.safetensors']) {
    assert.ok(fs.readFileSync(path.join(step(a.out, 12), f)).equals(fs.readFileSync(path.join(step(b.out, 12), f))), `${f} is byte-identical`);
  }
  assert.deepEqual(metrics(b.out), metrics(a.out));
});

test('a checkpoint altered in place (same size) fails its sha256 check; with no intact checkpoint left, resume says so', async () => {
  const r = recipe({ steps: 4, checkpoint_every: 2, eval_every: 0, data: { train: [{ path: SHAKES }] } });
  const run = await runCliAsync(['train', '--recipe', r.file]);
  assert.equal(run.status, 0, run.stderr);
  for (const s of [2, 4]) {
    const f = path.join(step(r.out, s), 'model.safetensors');
    const bytes = fs.readFileSync(f);
    bytes[bytes.length - 3] ^= 0x55;
    fs.writeFileSync(f, bytes);
    assert.equal(checkpointProblem(step(r.out, s)), 'model.safetensors does not match its sha256 in the manifest');
  }
  const res = await runCliAsync(['train', '--recipe', r.file, '--resume']);
  assert.equal(res.status, 1);
  assert.match(res.stderr, /no intact checkpoint in .* to resume from: step-00000004: model\.safetensors does not match its sha256 in the manifest; step-00000002: model\.safetensors does not match/);
  assert.equal(res.stderr.trim().split('\n').pop()!.startsWith('openelm train: '), true);
  assert.ok(fs.existsSync(step(r.out, 4)), 'nothing is moved when no checkpoint is intact');
});

test('--model RUN_FOLDER follows the run\'s latest checkpoint', async () => {
  const r = recipe({ steps: 4, checkpoint_every: 2, eval_every: 0, data: { train: [{ path: SHAKES }] } });
  assert.equal((await runCliAsync(['train', '--recipe', r.file])).status, 0);
  const g = await runCliAsync(['generate', '--model', r.out, '--prompt', 'ROMEO:', '--max-tokens', '3', '--ignore-eos', '--json', '--backend', 'js']);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).ids.length, 3);
  assert.match(g.stderr, /is a training run; using its latest checkpoint .*step-00000004/);
  const direct = await runCliAsync(['generate', '--model', step(r.out, 4), '--prompt', 'ROMEO:', '--max-tokens', '3', '--ignore-eos', '--json', '--backend', 'js']);
  assert.deepEqual(JSON.parse(direct.stdout).ids, JSON.parse(g.stdout).ids);
  // The library (and so chat and serve) resolves a run folder the same way.
  const lib = await loadModel(r.out, { backend: 'js' });
  try {
    assert.equal(lib.dir, step(r.out, 4));
  } finally {
    lib.dispose();
  }
  const empty = path.join(tmp, 'empty-run');
  fs.mkdirSync(empty);
  fs.writeFileSync(path.join(empty, 'latest'), 'step-00000009\n');
  const e = await runCliAsync(['generate', '--model', empty, '--prompt', 'x']);
  assert.equal(e.status, 1);
  assert.match(e.stderr, /empty-run is a training run folder without a complete checkpoint yet/);
});

test('corrupt JSONL lines are reported as they are skipped, before training goes on', async () => {
  const data = path.join(tmp, 'd.jsonl');
  const text = fs.readFileSync(SHAKES, 'utf8').slice(0, 40000).split('\n\n');
  const lines = text.map((t) => JSON.stringify({ text: t }));
  lines.splice(3, 0, '{"text": broken');
  fs.writeFileSync(data, lines.join('\n'));
  const r = recipe({ steps: 2, eval_every: 0, data: { train: [{ path: data }] }, pipeline: { mode: 'pack', min_chars: 0, min_tokens: 0 } });
  const res = await runCliAsync(['train', '--recipe', r.file]);
  assert.equal(res.status, 0, res.stderr);
  const at = res.stderr.search(/data d\.jsonl: skipped a corrupt line, .*d\.jsonl:4: invalid JSON/);
  assert.ok(at >= 0, res.stderr);
  assert.ok(at < res.stderr.indexOf('step 1/2'), 'reported before the first step ends');
  assert.match(res.stderr, /1 corrupt line skipped/, 'and counted at the end');
});
