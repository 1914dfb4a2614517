// Loaded into a spawned server with `--expose-gc --import` (NODE_OPTIONS), never by the library: on
// SIGUSR2 it runs a full garbage collection and prints one line with the JS heap, the memory held
// by buffers and the resident size that remain, so a soak test compares live memory instead of wherever V8's collection cycle
// happens to stand (RSS swings by tens of MiB between major collections).
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('gc-on-signal needs --expose-gc');
process.on('SIGUSR2', () => {
  gc();
  gc();
  const m = process.memoryUsage();
  process.stderr.write(`gc-done heap=${m.heapUsed} external=${m.external} rss=${m.rss}\n`);
});
