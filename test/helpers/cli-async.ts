// Run the built CLI without blocking the event loop, for tests whose child talks to a server that
// lives in the test process (spawnSync would deadlock), or that write to stdin over time.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { CLI, type CliResult } from './cli.js';

export function spawnCli(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: 'pipe' });
}

export function runCliAsync(args: string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawnCli(args, opts.env);
  let stdout = '', stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdin.end(opts.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  return new Promise((resolve) => child.on('close', (code) => { clearTimeout(timer); resolve({ status: code ?? -1, stdout, stderr }); }));
}
