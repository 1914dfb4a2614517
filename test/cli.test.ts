import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { runCli } from './helpers/cli.js';
import { tinyModelDir } from './helpers/tiny.js';

// The tiny model needs the real vocabulary size so the bundled tokenizer's ids fit.
const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 48 }, 3);

function json(r: { status: number; stdout: string; stderr: string }) {
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one JSON object and nothing else on stdout');
  return JSON.parse(lines[0]);
}

test('info --json reports per-layer dims and parameter count', () => {
  const j = json(runCli(['info', '--preset', 'OpenELM-270M', '--json']));
  assert.equal(j.parameters, 271527168);
  assert.equal(j.layers.length, 16);
  assert.equal(j.layers[0].query_heads, 12);
  const k = json(runCli(['info', '--model', dir, '--json']));
  assert.equal(k.num_layers, 2);
});

test('tokenize / detokenize round trip', () => {
  const j = json(runCli(['tokenize', '--text', 'Hello world!', '--bos', '--json']));
  assert.deepEqual(j.ids, [1, 15043, 3186, 29991]);
  const d = runCli(['detokenize', '--ids', '15043,3186,29991']);
  assert.equal(d.status, 0, d.stderr);
  assert.equal(d.stdout, 'Hello world!\n');
});

test('generate --json is greedy and reproducible', () => {
  const a = json(runCli(['generate', '--model', dir, '--prompt', 'Once upon a time', '--max-tokens', '8', '--json', '--backend', 'js']));
  assert.equal(a.prompt_tokens, 5);
  assert.ok(a.ids.length >= 1 && a.ids.length <= 8);
  assert.equal(typeof a.text, 'string');
  assert.ok(a.timings && typeof a.timings.prompt_ms === 'number');
  const b = json(runCli(['generate', '--model', dir, '--prompt', 'Once upon a time', '--max-tokens', '8', '--json', '--backend', 'js']));
  assert.deepEqual(a.ids, b.ids);
  const s1 = json(runCli(['generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '6', '--temperature', '1', '--seed', '7', '--json', '--ignore-eos']));
  const s2 = json(runCli(['generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '6', '--temperature', '1', '--seed', '7', '--json', '--ignore-eos']));
  assert.deepEqual(s1.ids, s2.ids);
  assert.equal(s1.ids.length, 6);
});

test('perplexity --json', () => {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'ppl-')), 't.txt');
  fs.writeFileSync(f, 'The quick brown fox jumps over the lazy dog. '.repeat(6));
  const j = json(runCli(['perplexity', '--model', dir, '--file', f, '--context', '16', '--json']));
  assert.ok(j.tokens > 20);
  assert.ok(Math.abs(Math.exp(j.nll) - j.ppl) < 1e-6 * j.ppl);
});

function expectError(args: string[], re: RegExp, status?: number) {
  const r = runCli(args);
  assert.notEqual(r.status, 0, `expected failure for ${args.join(' ')}`);
  if (status !== undefined) assert.equal(r.status, status);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  assert.ok(r.stderr.trim().split('\n').length === 1, `one line: ${r.stderr}`);
}

test('bad input: one clear line, non-zero exit', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bad-'));
  expectError(['frobnicate'], /unknown command/, 2);
  expectError(['generate', '--model', dir, '--prompt', 'x', '--bogus'], /unknown flag --bogus/, 2);
  expectError(['generate', '--model', dir, '--prompt', 'x', '--max-tokens', 'ten'], /needs a number/, 2);
  expectError(['generate', '--model', dir, '--prompt', 'x', '--temperature', '-1'], /must be >= 0/, 2);
  expectError(['generate', '--model', dir, '--prompt', 'x', '--threads', '0'], /threads must be >= 1/, 2);
  expectError(['generate', '--model', dir, '--prompt', 'x', '--dtype', 'q3'], /must be one of/, 2);
  expectError(['generate', '--model', path.join(tmp, 'nope'), '--prompt', 'x'], /does not exist/);
  expectError(['generate', '--model', tmp, '--prompt', 'x'], /config\.json not found/);
  fs.writeFileSync(path.join(tmp, 'config.json'), '{"model_dim": 64,');
  expectError(['generate', '--model', tmp, '--prompt', 'x'], /config\.json/);
  fs.writeFileSync(path.join(tmp, 'config.json'), '{"model_dim": 64}');
  expectError(['generate', '--model', tmp, '--prompt', 'x'], /missing "num_transformer_layers"/);
  // prompt longer than the context
  expectError(['generate', '--model', dir, '--prompt', 'word '.repeat(60)], /prompt has \d+ tokens but the context holds 48/);
  expectError(['generate', '--model', dir, '--prompt', 'x', '--tokenizer', path.join(tmp, 'tok.model')], /tokenizer file .* not found/);
  expectError(['tokenize'], /exactly one of --text or --file/, 2);
  expectError(['detokenize', '--ids', '1,x'], /not a token id/, 2);
  expectError(['perplexity', '--model', dir, '--file', path.join(tmp, 'none.txt')], /does not exist/);
});

test('bad checkpoints name the file or tensor', () => {
  // wrong shape / missing tensor / truncated file
  const good = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2 }, 4);
  const cfg = JSON.parse(fs.readFileSync(path.join(good, 'config.json'), 'utf8'));
  const wrong = fs.mkdtempSync(path.join(os.tmpdir(), 'wrong-'));
  fs.copyFileSync(path.join(good, 'model.safetensors'), path.join(wrong, 'model.safetensors'));
  fs.writeFileSync(path.join(wrong, 'config.json'), JSON.stringify({ ...cfg, model_dim: 128 }));
  expectError(['generate', '--model', wrong, '--prompt', 'x'], /tensor transformer\.\S+ has shape \[.*\], expected \[.*\]/);
  const missing = fs.mkdtempSync(path.join(os.tmpdir(), 'missing-'));
  fs.copyFileSync(path.join(good, 'model.safetensors'), path.join(missing, 'model.safetensors'));
  // an untied head needs lm_head.weight, which this file does not have
  fs.writeFileSync(path.join(missing, 'config.json'), JSON.stringify({ ...cfg, share_input_output_layers: false }));
  expectError(['generate', '--model', missing, '--prompt', 'x'], /tensor lm_head\.weight not found/);
  const trunc = fs.mkdtempSync(path.join(os.tmpdir(), 'trunc-'));
  const bytes = fs.readFileSync(path.join(good, 'model.safetensors'));
  fs.writeFileSync(path.join(trunc, 'model.safetensors'), bytes.subarray(0, bytes.length - 100));
  fs.copyFileSync(path.join(good, 'config.json'), path.join(trunc, 'config.json'));
  expectError(['generate', '--model', trunc, '--prompt', 'x'], /model\.safetensors/);
});
