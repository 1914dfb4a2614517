// A progress line on stderr: done/total, items per second and the time left. On a terminal it redraws
// in place; otherwise it prints one line when a stage finishes, so logs stay readable.

export class Progress {
  private t0 = performance.now();
  private lastDraw = 0;
  private readonly tty: boolean;

  constructor(private readonly label: string, private readonly total: number, private readonly unit = 'items',
    private readonly stream: NodeJS.WriteStream | null = process.stderr) {
    this.tty = !!stream?.isTTY;
  }

  get seconds(): number { return (performance.now() - this.t0) / 1000; }

  rate(done: number): number { return done / Math.max(this.seconds, 1e-9); }

  update(done: number): void {
    if (!this.stream || !this.tty) return;
    const now = performance.now();
    if (now - this.lastDraw < 100 && done < this.total) return;
    this.lastDraw = now;
    const frac = this.total ? done / this.total : 1;
    const width = 24, fill = Math.round(frac * width);
    const rate = this.rate(done);
    const eta = rate > 0 ? (this.total - done) / rate : 0;
    this.stream.write(`\r${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${this.total} ${this.unit} ${rate.toFixed(2)} ${this.unit}/s eta ${fmt(eta)}  `);
  }

  finish(done = this.total): void {
    if (!this.stream) return;
    const line = `${this.label}: ${done} ${this.unit} in ${fmt(this.seconds)} (${this.rate(done).toFixed(2)} ${this.unit}/s)`;
    this.stream.write(this.tty ? `\r${line}${' '.repeat(30)}\n` : `${line}\n`);
  }
}

function fmt(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.round(s % 60).toString().padStart(2, '0')}s` : `${Math.floor(m / 60)}h${(m % 60).toString().padStart(2, '0')}m`;
}
