// The browser-safe core: backends/, model/, adapters/, tokenizer/, generate/ and chat/ import no Node module
// (node:* or a bare Node builtin), statically or dynamically, so a browser build can take them as
// they are; file, network and thread access live behind the platform (src/platform/) and io/.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const CORE = ['backends', 'model', 'adapters', 'tokenizer', 'generate', 'chat'];
const builtins = new Set(builtinModules);

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Module specifiers a file imports: static imports/exports and import() calls with a string literal. */
function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  for (const re of [/\b(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g]) {
    for (const m of code.matchAll(re)) out.push(m[1]);
  }
  return out;
}

test('the browser-safe core imports no Node.js module', () => {
  const bad: string[] = [];
  for (const folder of CORE) {
    for (const f of files(path.join(SRC, folder))) {
      for (const s of specifiers(fs.readFileSync(f, 'utf8'))) {
        if (s.startsWith('node:') || builtins.has(s) || /getBuiltinModule/.test(s)) bad.push(`${path.relative(SRC, f)} imports ${s}`);
      }
      if (/getBuiltinModule\s*\(/.test(fs.readFileSync(f, 'utf8'))) bad.push(`${path.relative(SRC, f)} reaches Node builtins through getBuiltinModule`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the check sees Node imports when they are there', () => {
  assert.deepEqual(specifiers("import * as fs from 'node:fs';\nconst x = await import('os');\n// import y from 'node:path'"), ['node:fs', 'os']);
});

test('the core folders reach only each other, core/ and the platform interface (never io/, cli/ or serve/)', () => {
  const bad: string[] = [];
  const allowed = new Set([...CORE, 'core', 'platform']);
  for (const folder of CORE) {
    for (const f of files(path.join(SRC, folder))) {
      for (const s of specifiers(fs.readFileSync(f, 'utf8'))) {
        if (!s.startsWith('.')) continue;
        const target = path.relative(SRC, path.resolve(path.dirname(f), s)).split(path.sep)[0];
        if (!allowed.has(target)) bad.push(`${path.relative(SRC, f)} imports ${s}`);
        if (target === 'platform' && !s.endsWith('platform/platform.js')) bad.push(`${path.relative(SRC, f)} imports a platform implementation ${s}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});

/**
 * Modules that touch files, sockets or Node threads (src-relative paths). Not among them: the
 * safetensors reader and writer and the PEFT adapter files (bytes only), and the optimizer and gradient clipping, which the
 * page's trainer shares with the Node one (BROWSER_SAFE_TRAIN is checked below).
 */
const BROWSER_SAFE_TRAIN = ['adamw', 'clip'];
function nodeSide(rel: string): boolean {
  return new RegExp(`^(io/(?!(safetensors-reader|safetensors-writer|peft-files)\\.)|hub/|cli/|serve/|train/(?!(${BROWSER_SAFE_TRAIN.join('|')})\\.)|platform/node)`).test(rel.split(path.sep).join('/'));
}

test('the train/ and io/ modules the page shares import no Node.js module and nothing Node-side', () => {
  const shared = [...BROWSER_SAFE_TRAIN.map((n) => `train/${n}.ts`), 'io/safetensors-reader.ts', 'io/safetensors-writer.ts', 'io/peft-files.ts'];
  const bad: string[] = [];
  for (const rel of shared) {
    const f = path.join(SRC, rel);
    for (const s of specifiers(fs.readFileSync(f, 'utf8'))) {
      if (s.startsWith('node:') || builtins.has(s)) bad.push(`${rel} imports ${s}`);
      if (s.startsWith('.') && nodeSide(path.relative(SRC, path.resolve(path.dirname(f), s)))) bad.push(`${rel} imports the Node-side module ${s}`);
    }
  }
  assert.deepEqual(bad, []);
});

test('the browser entry and the web app (src/browser, src/web) import no Node.js module', () => {
  assert.ok(nodeSide('io/safetensors.js') && nodeSide('platform/node.js') && !nodeSide('io/safetensors-reader.js') && !nodeSide('model/load.js'));
  assert.ok(nodeSide('train/trainer.js') && nodeSide('train/recipe.js') && !nodeSide('train/adamw.js') && !nodeSide('io/safetensors-writer.js'));
  const bad: string[] = [];
  for (const folder of ['browser', 'web']) {
    for (const f of files(path.join(SRC, folder))) {
      for (const s of specifiers(fs.readFileSync(f, 'utf8'))) {
        if (s.startsWith('node:') || builtins.has(s)) bad.push(`${path.relative(SRC, f)} imports ${s}`);
        if (s.startsWith('.') && nodeSide(path.relative(SRC, path.resolve(path.dirname(f), s)))) bad.push(`${path.relative(SRC, f)} imports the Node-side module ${s}`);
      }
    }
  }
  assert.deepEqual(bad, []);
});
