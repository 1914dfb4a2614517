// Byte counts for messages: GiB from 1 GiB up, MiB below, so small and large sizes both read well.

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const trim = (s: string) => s.replace(/\.?0+$/, '');
  return n >= 2 ** 30 ? `${trim((n / 2 ** 30).toFixed(2))} GiB` : `${trim((n / 2 ** 20).toFixed(1))} MiB`;
}
