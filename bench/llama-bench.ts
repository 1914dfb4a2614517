// llama.cpp's `llama-bench` measured the way `openelm bench` measures: prefill of a P-token prompt
// into an empty context, then G greedy decode steps that follow that prompt. llama-bench's own tgG
// decodes from an empty context, where attention reads fewer cached positions than ours does after
// the prompt, so decode runs with `-d P` (the context first filled with P tokens). `-d` applies to
// every test of one invocation, hence two invocations: `-p P -n 0` and `-p 0 -n G -d P`.

import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export interface LlamaBenchResult {
  prefill_tok_s: number;
  decode_tok_s: number;
  /** Peak RSS in KiB over both invocations (only when run under /usr/bin/time). */
  rss_kb: number | null;
  model_size: number;
  build_commit: string;
}

interface Row { n_prompt: number; n_gen: number; n_depth?: number; avg_ts: number; model_size: number; build_commit: string }

/** Thrown when llama-bench dies of SIGILL (AMX kernels on a CPU whose OS does not enable AMX tiles). */
export class LlamaBenchSigill extends Error {}

function once(bin: string, args: string[], time: boolean): { rows: Row[]; rssKb: number | null } {
  const exe = path.join(bin, 'llama-bench');
  const r = time ? spawnSync('/usr/bin/time', ['-f', '%M', exe, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
    : spawnSync(exe, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  // /usr/bin/time reports a child's signal as "Command terminated by signal 4" and exits 128+4
  if (r.signal === 'SIGILL' || (time && /terminated by signal 4\b/.test(r.stderr ?? ''))) throw new LlamaBenchSigill('llama-bench died of SIGILL');
  if (r.status !== 0) throw new Error(`llama-bench failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return { rows: JSON.parse(r.stdout) as Row[], rssKb: time ? Number(r.stderr.trim().split('\n').pop()) : null };
}

/** Prefill (ppP, empty context) and decode (tgG at depth P) of one GGUF on T threads; `time`: peak RSS too. */
export function llamaBench(bin: string, file: string, P: number, G: number, T: number, time = false): LlamaBenchResult {
  const common = ['-m', file, '-t', String(T), '-r', '1', '-o', 'json'];
  const a = once(bin, [...common, '-p', String(P), '-n', '0'], time);
  const b = once(bin, [...common, '-p', '0', '-n', String(G), '-d', String(P)], time);
  const pp = a.rows.find((x) => x.n_prompt === P && x.n_gen === 0);
  const tg = b.rows.find((x) => x.n_gen === G && x.n_prompt === 0 && (x.n_depth ?? P) === P);
  if (!pp || !tg) throw new Error(`llama-bench printed no pp${P} / tg${G}@d${P} rows`);
  return {
    prefill_tok_s: pp.avg_ts, decode_tok_s: tg.avg_ts, model_size: pp.model_size, build_commit: tg.build_commit,
    rss_kb: a.rssKb === null || b.rssKb === null ? null : Math.max(a.rssKb, b.rssKb),
  };
}
