// The npm package works once installed, as a user gets it: `npm pack`, install the tarball into an
// empty folder, then run the README's commands through npx from that folder. No network: the
// package's own dependencies come from the npm cache that `npm ci` filled (the install pins them
// with this repository's lockfile, as an offline install from the cache needs exact versions).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-pkg-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// Offline: npm answers only from its cache, and any request that would need the network fails.
const ENV: NodeJS.ProcessEnv = {
  ...process.env, npm_config_offline: 'true', npm_config_audit: 'false',
  npm_config_fund: 'false', npm_config_update_notifier: 'false', npm_config_loglevel: 'error', NO_COLOR: '1',
};
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const NPX = process.platform === 'win32' ? 'npx.cmd' : 'npx';

function run(cmd: string, args: string[], cwd: string, timeoutMs = 120_000) {
  const r = spawnSync(cmd, args, { cwd, env: ENV, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

interface LockEntry { dev?: boolean; [k: string]: unknown; }

/** Pack the repository and install the tarball into an empty folder; returns that folder. */
function installPacked(): string {
  const packed = run(NPM, ['pack', '--json', '--ignore-scripts', '--pack-destination', tmp], REPO);
  assert.equal(packed.status, 0, packed.stderr);
  const info = (JSON.parse(packed.stdout) as { filename: string; files: { path: string }[] }[])[0];
  const shipped = new Set(info.files.map((f) => f.path));
  for (const f of ['dist/src/cli/main.js', 'recipes/test-tiny.yaml', 'recipes/quickstart.yaml', 'data/corpus/tinyshakespeare.txt', 'data/corpus/SOURCE.md', 'assets/tokenizer/tokenizer.model']) {
    assert.ok(shipped.has(f), `the package ships ${f}`);
  }
  assert.ok(![...shipped].some((f) => f.startsWith('runs/') || f.startsWith('test/') || f.startsWith('dist/test/')), 'no runs or tests in the package');

  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  const tgz = path.join(tmp, info.filename);
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const own = lock.packages[''] as { dependencies: Record<string, string>; bin: Record<string, string>; engines: Record<string, string> };
  const packages: Record<string, unknown> = {
    '': { name: 'app', dependencies: { openelm: `file:${tgz}` } },
    'node_modules/openelm': {
      version: JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')).version, resolved: `file:${tgz}`,
      integrity: `sha512-${createHash('sha512').update(fs.readFileSync(tgz)).digest('base64')}`,
      dependencies: own.dependencies, bin: own.bin, engines: own.engines,
    },
  };
  for (const [k, v] of Object.entries(lock.packages)) if (k.startsWith('node_modules/') && !v.dev) packages[k] = v;
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, dependencies: { openelm: `file:${tgz}` } }));
  fs.writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }));
  const inst = run(NPM, ['ci', '--ignore-scripts'], app);
  assert.equal(inst.status, 0, `npm could not install the package offline (its dependencies must be in the npm cache: run npm ci first): ${inst.stderr}`);
  return app;
}

test('npm pack → install into an empty folder → npx openelm --help, train test-tiny, generate from the run, quickstart', () => {
  const app = installPacked();
  const pkg = path.join(app, 'node_modules', 'openelm');
  const listing = () => fs.readdirSync(pkg).sort();
  const before = listing();

  const help = run(NPX, ['openelm', '--help'], app);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /usage: openelm <command>/);

  const train = run(NPX, ['openelm', 'train', '--recipe', 'node_modules/openelm/recipes/test-tiny.yaml'], app);
  assert.equal(train.status, 0, train.stderr);
  const runDir = path.join(app, 'runs', 'test-tiny');
  assert.equal(fs.readFileSync(path.join(runDir, 'latest'), 'utf8').trim(), 'step-00000008');
  assert.ok(fs.existsSync(path.join(runDir, 'step-00000008', 'model.safetensors')));
  assert.deepEqual(listing(), before, 'nothing written inside node_modules/openelm');

  const gen = run(NPX, ['openelm', 'generate', '--model', 'runs/test-tiny', '--prompt', 'ROMEO:', '--max-tokens', '5', '--ignore-eos', '--json'], app);
  assert.equal(gen.status, 0, gen.stderr);
  const out = JSON.parse(gen.stdout) as { ids: number[]; text: string };
  assert.equal(out.ids.length, 5);
  assert.equal(typeof out.text, 'string');

  // The quickstart reads the package's corpus and writes ./runs/quickstart; one step shows it runs.
  const qs = run(NPX, ['openelm', 'train', '--recipe', 'node_modules/openelm/recipes/quickstart.yaml', '--stop-after', '1'], app, 300_000);
  assert.equal(qs.status, 0, qs.stderr);
  assert.ok(fs.existsSync(path.join(app, 'runs', 'quickstart', 'step-00000001', 'model.safetensors')), qs.stderr);
  assert.match(qs.stderr, /data shakespeare|data gutenberg|step 1\/400/);
  assert.deepEqual(listing(), before, 'nothing written inside node_modules/openelm');
});
