// Command-line flags of the bench scripts: Node's parseArgs, with a bad flag or value reported as
// one line and exit status 2 (as the CLI does) instead of an uncaught error's stack trace.

import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';

export function benchArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (e) {
    process.stderr.write(`${path.basename(process.argv[1] ?? 'bench')}: ${(e as Error).message}\n`);
    process.exit(2);
  }
}
