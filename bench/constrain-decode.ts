// Decode slowdown of constrained decoding at OpenELM-270M: the same prompt and token budget
// generated plain and under a JSON schema, greedy and sampled, through the library (the decode step
// the server uses). Random weights: speed does not depend on them, and a random model writes long
// strings, so the schema's string keeps every run at the full budget.
//
//   npx tsc -p tsconfig.json && node dist/bench/constrain-decode.js [--model DIR] [--dtype q8]
//     [--tokens 64] [--rounds 3] [--backend auto] [--threads N]
//
// Runs alternate (plain, constrained) `rounds` times per sampling mode; each mode keeps its best run
// figures (least ms per token), the ones least disturbed by other load on the machine.
// The first constrained run of a schema in a process also builds the schema's token-mask cache;
// it is reported apart ("first") from the later runs. Prints one JSON object:
//   decode_ms_per_token   decode phase only (after the first token), wall clock
//   cpu_ms_per_token      the process's CPU time over the same phase (all threads), per token;
//                         steadier than wall clock when other programs share the cores
//   slowdown              constrained / plain decode ms per token - 1

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchArgs } from './args.js';
import { loadModel, type LoadedModel } from '../src/api.js';
import type { LoadDType } from '../src/model/load.js';
import { presetHFConfig, resolveConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { saveModel } from '../src/io/model-folder.js';

const { values: a } = benchArgs({
  options: {
    model: { type: 'string' }, dtype: { type: 'string', default: 'q8' }, tokens: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' }, backend: { type: 'string', default: 'auto' }, threads: { type: 'string' },
  },
});
const TOKENS = Number(a.tokens), ROUNDS = Number(a.rounds);

// A long fixed-length string: the value cannot complete before the token budget runs out.
const SCHEMA = {
  type: 'object',
  properties: {
    title: { type: 'string', maxLength: 40 },
    year: { type: 'integer', minimum: 1900, maximum: 2100 },
    story: { type: 'string', minLength: 2000, maxLength: 2000 },
  },
  required: ['title', 'year', 'story'],
  additionalProperties: false,
};
const PROMPT = 'Write a short story about a lighthouse keeper and a storm, as JSON:';

function randomModel(): string {
  const config = resolveConfig(presetHFConfig('OpenELM-270M-Instruct'));
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 1);
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-bench-')), 'OpenELM-270M-Instruct');
  fs.mkdirSync(dir);
  saveModel(dir, config, layout, flat, { dtype: 'BF16' });
  return dir;
}

interface Run { decode_ms_per_token: number; cpu_ms_per_token: number; tokens: number; finish: string; }

async function once(m: LoadedModel, constrained: boolean, temperature: number, seed: number): Promise<Run> {
  const stream = m.stream(PROMPT, {
    maxTokens: TOKENS, temperature, seed, ignoreEos: !constrained, repetitionPenalty: 1,
    ...(constrained ? { jsonSchema: SCHEMA } : {}),
  });
  // CPU time from the first token on: the decode phase, as the wall-clock figure
  let c0: NodeJS.CpuUsage | undefined;
  for await (const chunk of stream) { void chunk; c0 ??= process.cpuUsage(); }
  const c = process.cpuUsage(c0);
  const r = await stream.result;
  const n = r.ids.length;
  return {
    decode_ms_per_token: +(r.timings.predicted_ms / Math.max(1, n - 1)).toFixed(3),
    cpu_ms_per_token: +((c.user + c.system) / 1000 / Math.max(1, n - 1)).toFixed(3),
    tokens: n, finish: r.finishReason,
  };
}

const dir = a.model ?? randomModel();
const m = await loadModel(dir, { dtype: a.dtype as LoadDType, backend: a.backend, ...(a.threads ? { threads: Number(a.threads) } : {}) });
try {
  await once(m, false, 0, 0); // warm-up: JIT and the backend's buffers
  const modes: Record<string, unknown> = {};
  for (const [label, temperature] of [['greedy', 0], ['temperature 0.8', 0.8]] as const) {
    const plain: Run[] = [], constrained: Run[] = [];
    const first = label === 'greedy' ? await once(m, true, temperature, 99) : undefined;
    for (let i = 0; i < ROUNDS; i++) {
      plain.push(await once(m, false, temperature, i));
      constrained.push(await once(m, true, temperature, i));
    }
    // each figure's best over the rounds, separately
    const best = (rs: Run[]): Run => ({
      decode_ms_per_token: Math.min(...rs.map((r) => r.decode_ms_per_token)),
      cpu_ms_per_token: Math.min(...rs.map((r) => r.cpu_ms_per_token)),
      tokens: rs[0].tokens, finish: rs[0].finish,
    });
    const p = best(plain), c = best(constrained);
    modes[label] = {
      plain: p, constrained: c, ...(first ? { constrained_first_run_of_schema: first } : {}),
      slowdown: +(c.decode_ms_per_token / p.decode_ms_per_token - 1).toFixed(3),
      cpu_slowdown: +(c.cpu_ms_per_token / p.cpu_ms_per_token - 1).toFixed(3),
    };
  }
  const meta = {
    model: a.model ? path.basename(dir) : 'OpenELM-270M-Instruct shape, random weights', dtype: a.dtype, backend: m.backend.name,
    tokens: TOKENS, rounds: ROUNDS, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version,
    load_average: os.loadavg().map((x) => +x.toFixed(1)),
  };
  process.stdout.write(JSON.stringify({ meta, modes }) + '\n');
} finally {
  m.dispose();
  if (!a.model) fs.rmSync(path.dirname(dir), { recursive: true, force: true });
}
