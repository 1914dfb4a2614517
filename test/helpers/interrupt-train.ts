// `openelm train` stopped with Ctrl-C once a given step has been logged: the run must finish that
// step, write a checkpoint and exit with 130, with no stack trace. What each task's checkpoint
// holds is for the caller to check.
import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { CLI } from './cli.js';

export interface Interrupted { stderr: string; step: number; checkpoint: string; }

/** Runs `openelm train --recipe FILE` for a run of 100000 steps and sends SIGINT once step `at` is logged. */
export async function interruptTrain(recipeFile: string, at: number): Promise<Interrupted> {
  const child = spawn(process.execPath, [CLI, 'train', '--recipe', recipeFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logged = new RegExp(`step ${at}/100000`);
  let stderr = '', sent = false;
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    if (!sent && logged.test(stderr)) { sent = true; child.kill('SIGINT'); }
  });
  const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  assert.equal(code, 130, stderr);
  const m = /interrupted after step (\d+) of 100000; checkpoint (\S+)/.exec(stderr);
  assert.ok(m, stderr);
  assert.doesNotMatch(stderr, /internal error|at .*\.js:\d+/);
  return { stderr, step: Number(m[1]), checkpoint: m[2] };
}
