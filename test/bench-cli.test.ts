// `openelm bench`: JSON shape and input errors on a tiny model (no timing assertions: machines vary).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { runCli } from './helpers/cli.js';
import { tinyModelDir, tinyModel } from './helpers/tiny.js';
import { benchModel, englishText } from '../src/cli/commands/bench.js';

// vocab 32000 so the bundled tokenizer fits the model (the command loads both).
const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 48 }, 5);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function fail(args: string[], re: RegExp, status?: number) {
  const r = runCli(['bench', ...args]);
  assert.notEqual(r.status, 0, `expected failure for ${args.join(' ')}`);
  if (status !== undefined) assert.equal(r.status, status, r.stderr);
  assert.match(r.stderr, re);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  assert.equal(r.stdout, '');
}

test('bench --json prints one object with throughput, memory and tokenizer speed', () => {
  for (const dtype of ['f32', 'q8']) {
    const r = runCli(['bench', '--model', dir, '--dtype', dtype, '--prompt-tokens', '16', '--gen-tokens', '8', '--threads', '1', '--backend', 'js', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, 'one JSON object and nothing else on stdout');
    const j = JSON.parse(lines[0]);
    for (const k of ['prefill_tok_s', 'decode_tok_s', 'rss_mb', 'prefill_ms', 'decode_ms', 'load_ms', 'ready_ms', 'tokenizer_mb_s']) {
      assert.equal(typeof j[k], 'number', k);
      assert.ok(Number.isFinite(j[k]) && j[k] > 0, `${k} = ${j[k]}`);
    }
    assert.ok(j.ready_ms >= j.load_ms, `ready_ms ${j.ready_ms} covers load_ms ${j.load_ms}`);
    assert.equal(j.model, dir);
    assert.equal(j.dtype, dtype);
    assert.equal(j.backend, 'js');
    assert.equal(j.threads, 1);
    assert.equal(j.prompt_tokens, 16);
    assert.equal(j.gen_tokens, 8);
    assert.ok(Number.isInteger(j.tokenizer_tokens) && j.tokenizer_tokens > 1000);
  }
});

test('bench --json reports its own peak RSS, not that of a larger process that started it', { skip: process.platform !== 'linux' }, () => {
  // getrusage's maxRSS survives exec on Linux: a child of a 600 MiB process reported 600 MiB
  const big = Buffer.alloc(600 << 20, 1);
  const r = runCli(['bench', '--model', dir, '--prompt-tokens', '8', '--gen-tokens', '4', '--threads', '1', '--backend', 'js', '--warmup=false', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const rss = JSON.parse(r.stdout.trim()).rss_mb as number;
  assert.ok(rss > 0 && rss < 400, `rss_mb ${rss}`);
  assert.equal(big[big.length - 1], 1);
});

test('bench without --json prints a readable summary', () => {
  const r = runCli(['bench', '--model', dir, '--prompt-tokens', '8', '--gen-tokens', '4', '--backend', 'js', '--warmup=false']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /prefill\s+pp8\s+[\d.]+ tok\/s/);
  assert.match(r.stdout, /decode\s+tg4\s+[\d.]+ tok\/s/);
  assert.match(r.stdout, /peak RSS \d+ MB/);
});

test('bench rejects bad input with one clear line and a non-zero exit', () => {
  fail(['--model', dir, '--dtype', 'q3'], /--dtype must be one of .*q8/, 2);
  fail(['--model', dir, '--threads', '0'], /--threads must be >= 1/, 2);
  fail(['--model', dir, '--prompt-tokens', '40', '--gen-tokens', '9'], /40 \+ --gen-tokens 9 = 49 tokens do not fit the model's context of 48/, 1);
  fail(['--model', dir, '--prompt-tokens', '0'], /--prompt-tokens must be >= 1/, 2);
  fail(['--model', dir, '--backend', 'cuda'], /--backend must be one of/, 2);
  fail(['--model', dir + '-missing'], /model folder .* does not exist/, 2);
});

test('benchModel runs in-process and englishText is deterministic prose', async () => {
  const { model } = tinyModel({ max_context_length: 32 }, 2);
  const t = await benchModel(model, { promptTokens: 8, genTokens: 4, warmup: false, repeats: 3 });
  assert.ok(t.prefill_tok_s > 0 && t.decode_tok_s > 0);
  await assert.rejects(benchModel(model, { promptTokens: 30, genTokens: 3 }), /do not fit the model's context of 32/);
  const a = englishText(5000), b = englishText(5000);
  assert.equal(a, b);
  assert.ok(a.length >= 5000 && /^[A-Z]/.test(a) && /[.?]\s*$/.test(a));
});
