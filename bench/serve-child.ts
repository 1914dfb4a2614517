// `openelm serve` in a child process for the server benchmarks: started with the given flags, ready
// once it has printed both its address and "model ready".
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export async function startServe(flags: string[]): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'serve', ...flags], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: string) => {
      err += d;
      const m = /listening on (\S+)/.exec(err);
      if (m && err.includes('model ready')) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(`server exited: ${err.trim()}`)));
  });
  return { url, stop: () => new Promise<void>((r) => { child.on('exit', () => r()); child.kill('SIGTERM'); }) };
}
