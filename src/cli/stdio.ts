// What the CLI does when its output goes away. A reader that stops early (`openelm generate | head
// -n 2`) closes the pipe; the next write fails with EPIPE. Like the standard Unix tools, the command
// then ends at once and quietly, with the status a shell reports for a program stopped by SIGPIPE
// (128 + 13). Node ignores SIGPIPE itself, so without this the failed write surfaces as an
// unhandled 'error' event with a stack trace.

/** Exit status after the reader of stdout went away. */
export const EXIT_CLOSED_STDOUT = 141;

export function isClosedPipe(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

export function handleClosedOutput(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (isClosedPipe(e)) process.exit(EXIT_CLOSED_STDOUT);
    try { process.stderr.write(`openelm: cannot write to stdout: ${e.message}\n`); } catch { /* nowhere left to report it */ }
    process.exit(74);
  });
  // Nowhere left to report a failed write to stderr; the exit status still tells.
  process.stderr.on('error', () => undefined);
}
