// A download progress display on stderr: a redrawn bar on a terminal, a line per file otherwise
// (logs and CI stay readable).

import type { DownloadProgress } from './index.js';

function human(n: number): string {
  const u = ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${u[i]}`;
}

export function stderrProgress(stream: NodeJS.WriteStream = process.stderr): (p: DownloadProgress) => void {
  const tty = stream.isTTY === true;
  let last = 0, current = '', t0 = 0, startBytes = 0;
  return (p) => {
    const now = performance.now();
    if (p.file !== current) { current = p.file; t0 = now; startBytes = p.downloaded; if (!tty) stream.write(`downloading ${p.repo}/${p.file}${p.total !== undefined ? ` (${human(p.total)})` : ''}\n`); }
    if (!tty) {
      if (p.done) stream.write(`downloaded ${p.repo}/${p.file}\n`);
      return;
    }
    if (!p.done && now - last < 100) return;
    last = now;
    const rate = (p.downloaded - startBytes) / Math.max(1e-3, (now - t0) / 1000);
    const frac = p.total ? Math.min(1, p.downloaded / p.total) : 0;
    const width = 24, fill = Math.round(frac * width);
    const bar = p.total ? `[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%` : '';
    stream.write(`\r${p.file} ${bar} ${human(p.downloaded)}${p.total ? ` / ${human(p.total)}` : ''} ${human(rate)}/s\x1b[K`);
    if (p.done) stream.write('\n');
  };
}
