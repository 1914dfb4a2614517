// What a careless or hostile user does to the CLI: write over its own input, close the pipe it
// prints to, mistype flags, feed it a broken checkpoint. Every case ends with one clear line (or
// quietly), the right exit status, and nothing lost.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, type CliResult } from './helpers/cli.js';
import { spawnCli } from './helpers/cli-async.js';
import { tinyModelDir } from './helpers/tiny.js';
import { readGGUF } from '../src/io/gguf.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { VERSION } from '../src/core/version.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-cli-hard-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const model = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 256, rope_max_length: 256 }, 11);

function oneLine(r: CliResult, status: number, re: RegExp): void {
  assert.equal(r.status, status, `exit ${r.status}, stderr: ${r.stderr}`);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /, 'no stack trace');
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
}

const leftovers = (dir: string) => fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));

test('convert never writes over its own input, through a symlink or a hard link either; an existing output needs --force', () => {
  const dir = path.join(tmp, 'conv');
  fs.cpSync(model, dir, { recursive: true });
  const weights = path.join(dir, 'model.safetensors');
  const before = fs.readFileSync(weights);
  const convert = (out: string, ...extra: string[]) => runCli(['convert', '--model', dir, '--to', 'gguf', '--dtype', 'f16', '--out', out, ...extra]);

  oneLine(convert(weights), 2, /--out .*model\.safetensors is an input of this command; writing it would destroy that input/);
  oneLine(convert(weights, '--force'), 2, /is an input of this command/);
  oneLine(convert(path.join(dir, 'config.json'), '--force'), 2, /config\.json is an input of this command/);
  const link = path.join(tmp, 'link.gguf');
  fs.symlinkSync(weights, link);
  oneLine(convert(link, '--force'), 2, /link\.gguf is the same file as .*model\.safetensors, an input of this command/);
  const hard = path.join(tmp, 'hard.gguf');
  fs.linkSync(weights, hard);
  oneLine(convert(hard, '--force'), 2, /hard\.gguf is the same file as .*model\.safetensors/);
  assert.deepEqual(fs.readFileSync(weights), before, 'the model is untouched');

  // A new file is written; the same name again needs --force; --force replaces it.
  const out = path.join(tmp, 'm.gguf');
  assert.equal(convert(out).status, 0);
  const first = fs.readFileSync(out);
  oneLine(convert(out), 2, /--out .*m\.gguf already exists; pass --force to replace it/);
  const forced = convert(out, '--force', '--dtype', 'f32');
  assert.equal(forced.status, 0, forced.stderr);
  assert.notDeepEqual(fs.readFileSync(out), first);
  assert.equal(readGGUF(out).metadata.get('general.architecture'), 'openelm');
  // A conversion that fails half way leaves the old output as it was (temp file + rename).
  const small = tinyModelDir({ vocab_size: 300 }, 1);
  const failed = runCli(['convert', '--model', small, '--to', 'gguf', '--out', out, '--force']);
  assert.equal(failed.status, 1);
  assert.equal(readGGUF(out).metadata.get('general.architecture'), 'openelm');
  assert.deepEqual(leftovers(tmp), []);
  assert.deepEqual(leftovers(dir), []);
});

/** Start a command, read its first output, then close the pipe as `| head` does. */
async function closeStdoutEarly(args: string[]): Promise<{ code: number | null; stderr: string; got: string }> {
  const child = spawnCli(args);
  let stderr = '', got = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdin.end();
  await new Promise<void>((resolve) => child.stdout.once('data', (d: Buffer) => { got = d.toString('utf8'); resolve(); }));
  child.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, stderr, got };
}

test('a closed stdout (generate | head, tokenize | head -c) ends the command quietly with status 141', async () => {
  const big = path.join(tmp, 'big.txt');
  fs.writeFileSync(big, 'All the world\'s a stage, and all the men and women merely players. '.repeat(40_000));
  const t = await closeStdoutEarly(['tokenize', '--file', big]);
  assert.ok(t.got.length > 0);
  assert.equal(t.code, 141, t.stderr);
  assert.equal(t.stderr, '', 'nothing on stderr');
  const g = await closeStdoutEarly(['generate', '--model', model, '--prompt', 'Once upon a time', '--max-tokens', '200', '--ignore-eos', '--backend', 'js']);
  assert.equal(g.code, 141, g.stderr);
  assert.equal(g.stderr, '');
});

test('usage errors exit 2 in every command, with one line naming the flag or file', () => {
  const missing = path.join(tmp, 'missing');
  const cases: [string[], RegExp][] = [
    [['generate', '--model', missing, '--prompt', 'x'], /model folder .*missing does not exist/],
    [['bench', '--model', missing], /model folder .*missing does not exist/],
    [['info', '--model', missing], /model folder .*missing does not exist/],
    [['convert', '--model', missing, '--out', path.join(tmp, 'x.gguf')], /model folder .*missing does not exist/],
    [['generate', '--model', model, '--prompt', 'x', '--tokenizer', missing], /tokenizer file .*missing not found/],
    [['tokenize', '--text', 'x', '--model', missing], /model folder .*missing does not exist/],
    [['tokenize', '--text', 'x', '--tokenizer', missing], /tokenizer file .*missing not found/],
    [['train', '--recipe', path.join(tmp, 'nope.yaml')], /recipe file .*nope\.yaml does not exist/],
    [['train', '--recipe', 'x.yaml', '--threads', '0'], /--threads must be >= 1/],
    [['download', 'not an id'], /"not an id" is not a hub model id/],
    [['download', 'apple/x', '--revision', '../x'], /invalid revision/],
    [['serve', '--model', model, '--port', '70000'], /--port must be <= 65535/],
    [['serve', '--model', model, '--bogus'], /unknown flag --bogus/],
    [['serve', '--model', model, '--cors', 'app.example'], /--cors "app\.example" is not an origin; give scheme and host/],
    [['chat', '--model', model, '--max-tokens', 'many'], /--max-tokens needs a number/],
    [['chat', '--model', missing], /missing is neither a model folder nor a hub id/],
    [['perplexity', '--model', model, '--file', missing], /input file .*missing does not exist/],
    [['detokenize', '--ids', 'x'], /not a token id/],
  ];
  for (const [args, re] of cases) oneLine(runCli(args), 2, re);
  const bare = runCli([]);
  assert.equal(bare.status, 2);
  assert.equal(bare.stdout, '', 'usage on stderr when it is an error');
  assert.match(bare.stderr, /usage: openelm <command>/);
});

test('--version is in the help, and is the package version', () => {
  const h = runCli(['--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--version/);
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
  assert.equal(VERSION, pkg.version);
  const v = runCli(['--version']);
  assert.equal(v.status, 0);
  assert.equal(v.stdout, `openelm ${pkg.version}\n`);
});

test('train takes --threads like every model command', () => {
  const h = runCli(['train', '--help']);
  assert.match(h.stdout, /--threads N/);
  const dir = path.join(tmp, 'threads');
  fs.mkdirSync(dir);
  const recipe = path.join(dir, 'r.json');
  fs.writeFileSync(recipe, JSON.stringify({
    model: { config: { num_transformer_layers: 1, model_dim: 16, head_dim: 8 } },
    data: { train: [{ path: path.join(REPO, 'data/corpus/tinyshakespeare.txt') }] },
    seq_len: 8, batch_size: 1, steps: 1, optimizer: { lr: 1e-3 }, pipeline: { mode: 'pack', min_chars: 0, min_tokens: 0, split_words: 64 },
    out_dir: path.join(dir, 'out'),
  }));
  const r = runCli(['train', '--recipe', recipe, '--threads', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /compute: (\w+, 1 threads?|js)/);
});

test('NaN or infinite weights are named at load time, for every storage dtype', () => {
  const bad = path.join(tmp, 'nan');
  fs.cpSync(model, bad, { recursive: true });
  const file = path.join(bad, 'model.safetensors');
  const st = SafetensorsFile.open(file);
  const info = st.info('transformer.layers.1.attn.qkv_proj.weight');
  const norm = st.info('transformer.layers.0.attn_norm.weight');
  st.close();
  const bytes = fs.readFileSync(file);
  bytes.writeFloatLE(NaN, info.fileOffset + 4 * 5);
  fs.writeFileSync(file, bytes);
  for (const dtype of ['auto', 'f16', 'bf16', 'q8', 'q4']) {
    oneLine(runCli(['generate', '--model', bad, '--prompt', 'x', '--dtype', dtype, '--backend', 'js']), 1,
      /tensor transformer\.layers\.1\.attn\.qkv_proj\.weight in .*model\.safetensors holds NaN at element 5; the checkpoint is corrupt or its training diverged/);
  }
  bytes.writeFloatLE(0.5, info.fileOffset + 4 * 5);
  bytes.writeFloatLE(-Infinity, norm.fileOffset);
  fs.writeFileSync(file, bytes);
  oneLine(runCli(['generate', '--model', bad, '--prompt', 'x', '--backend', 'js']), 1, /transformer\.layers\.0\.attn_norm\.weight .* holds -Infinity at element 0/);
});

test('the quickstart\'s duration is stated the same way everywhere', () => {
  const phrase = /2–10 minutes on 2 cores \(with the optional native sgemm about 2 on an AVX-512 CPU and 6 on an AVX2-only one; on WebAssembly alone about 6 and 10\)/;
  for (const f of ['README.md', 'recipes/README.md', 'recipes/quickstart.yaml']) {
    const text = fs.readFileSync(path.join(REPO, f), 'utf8').replace(/\n#?\s*/g, ' ');
    assert.match(text, phrase, f);
    assert.doesNotMatch(text, /~10 minutes|About 6 minutes|2-6 min\b|2–6 minutes/, f);
  }
});
