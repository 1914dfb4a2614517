// Puts the webgpu and PyTorch lines of one bench/gpu/run.sh run side by side, with the ratios the
// issues ask about (ours / PyTorch), as one JSON object on stdout.
//
//   node dist/bench/gpu/summary.js webgpu.jsonl pytorch.jsonl

import * as fs from 'node:fs';

type Line = Record<string, unknown> & { backend?: string; what?: string; model?: string; mode?: string };

const read = (f: string): Line[] => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '').split('\n')
  .filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Line);
const [oursFile, torchFile] = process.argv.slice(2);
const ours = read(oursFile), torch = read(torchFile);
const num = (l: Line | undefined, k: string): number | undefined => (typeof l?.[k] === 'number' ? l[k] as number : undefined);
const ratio = (a?: number, b?: number) => (a !== undefined && b ? +(a / b).toFixed(3) : null);

const out: Record<string, unknown> = { inference: {}, training: {} };
for (const o of ours.filter((l) => l.what === 'inference')) {
  const m = o.model!;
  const eager = torch.find((l) => l.what === 'inference' && l.model === m && l.mode === 'eager');
  const compiled = torch.find((l) => l.what === 'inference' && l.model === m && l.mode !== 'eager' && !l.error);
  (out.inference as Record<string, unknown>)[m] = {
    webgpu: o, pytorch_eager: eager ?? null, pytorch_compiled: compiled ?? null,
    decode_vs_eager: ratio(num(o, 'decode_tok_s'), num(eager, 'decode_tok_s')),
    decode_vs_compiled: ratio(num(o, 'decode_tok_s'), num(compiled, 'decode_tok_s')),
    prefill_vs_eager: ratio(num(o, 'prefill_tok_s'), num(eager, 'prefill_tok_s')),
  };
}
for (const o of ours.filter((l) => l.what === 'training')) {
  const m = o.model!;
  const eager = torch.find((l) => l.what === 'training' && l.model === m && l.mode === 'eager');
  const compiled = torch.find((l) => l.what === 'training' && l.model === m && l.mode !== 'eager' && !l.error);
  (out.training as Record<string, unknown>)[m] = {
    webgpu: o, pytorch_eager: eager ?? null, pytorch_compiled: compiled ?? null,
    tokens_vs_eager: ratio(num(o, 'tokens_per_s'), num(eager, 'tokens_per_s')),
    tokens_vs_compiled: ratio(num(o, 'tokens_per_s'), num(compiled, 'tokens_per_s')),
  };
}
out.errors = [...ours, ...torch].filter((l) => l.error);
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
