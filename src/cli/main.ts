#!/usr/bin/env node
// The `openelm` command: dispatches to one module per verb (src/cli/commands/<verb>.ts), each
// exporting `spec` (its flags) and `run(flags)`. User errors print one line and exit non-zero;
// anything else is a bug and keeps its stack trace.

import { OpenELMError, UsageError } from '../core/errors.js';
import { parseFlags, helpText, type CommandSpec, type ParsedFlags } from './args.js';
import { EXIT_CLOSED_STDOUT, handleClosedOutput, isClosedPipe } from './stdio.js';
import { VERSION } from '../core/version.js';

export interface Command { spec: CommandSpec; run(flags: ParsedFlags): Promise<number | undefined>; }

// Every verb, with its one-line summary; the module is loaded only when the verb runs.
const COMMANDS: Record<string, string> = {
  info: 'show a model\'s resolved config, per-layer dims and parameter count',
  tokenize: 'text to Llama-2 token ids',
  detokenize: 'token ids to text',
  generate: 'generate a continuation of a prompt',
  chat: 'interactive chat with an -Instruct model',
  serve: 'OpenAI-compatible HTTP server',
  web: 'the browser app, served with a model (chat and fine-tune in a browser)',
  perplexity: 'perplexity of a text file',
  eval: 'lm-evaluation-harness-compatible benchmarks',
  train: 'pretrain or fine-tune from a recipe file',
  report: 'compare training runs (and CoreNet logs) on one HTML page',
  convert: 'convert between HF, GGUF, MLX and CoreNet formats, or an adapter to mlx-lm',
  merge: 'merge a LoRA/DoRA adapter into its base model',
  average: 'average CoreNet checkpoints as CoreNet does',
  recipe: 'export a recipe as a CoreNet training YAML, or import one',
  bench: 'prefill/decode throughput benchmark',
  download: 'download a model from the Hugging Face hub',
};

function usage(): string {
  const lines = ['openelm — run, train and evaluate Apple OpenELM models', '', 'usage: openelm <command> [flags]', '', 'commands:'];
  for (const [name, summary] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(12)}${summary}`);
  lines.push('', 'openelm <command> --help shows the flags of a command; openelm --version prints the version.');
  lines.push('Exit status: 0 success, 1 an error (one line on stderr), 2 bad usage, 130 interrupted, 141 stdout closed early.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (!verb) { process.stderr.write(usage() + '\n'); return 2; }
  if (verb === '--help' || verb === '-h' || verb === 'help') { process.stdout.write(usage() + '\n'); return 0; }
  if (verb === '--version' || verb === '-V' || verb === 'version') { process.stdout.write(`openelm ${VERSION}\n`); return 0; }
  if (!Object.hasOwn(COMMANDS, verb)) { process.stderr.write(`openelm: unknown command "${verb}" (see openelm --help)\n`); return 2; }
  const cmd = (await import(`./commands/${verb}.js`)) as Command;
  if (rest.includes('--help') || rest.includes('-h')) { process.stdout.write(helpText(cmd.spec) + '\n'); return 0; }
  try {
    const flags = parseFlags(cmd.spec, rest);
    const rc = await cmd.run(flags);
    return typeof rc === 'number' ? rc : 0;
  } catch (e) {
    if (e instanceof OpenELMError) {
      process.stderr.write(`openelm ${verb}: ${e.message}\n`);
      return e instanceof UsageError || e.code === 'usage' ? 2 : 1;
    }
    throw e;
  }
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${(await import('node:fs')).realpathSync(process.argv[1])}`).href;
if (isMain) {
  handleClosedOutput();
  main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; }, (e: unknown) => {
    if (isClosedPipe(e)) { process.exitCode = EXIT_CLOSED_STDOUT; return; }
    process.stderr.write(`openelm: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exitCode = 70;
  });
}
