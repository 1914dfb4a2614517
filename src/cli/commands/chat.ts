// `openelm chat`: a terminal chat. Answers stream as they are generated; the conversation keeps its
// KV cache between turns and drops its oldest turns when it outgrows the context. Ctrl-C stops the
// current answer (twice at an empty prompt quits). With stdin from a pipe, each line is one message
// and stdout carries only the answers (command feedback goes to stderr).

import * as readline from 'node:readline';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { MODEL_FLAGS, SPECULATIVE_FLAGS, loadOptionsFromFlags, speculativeFromFlags } from '../common.js';
import { loadModel } from '../../api.js';
import type { ChatTurnOptions } from '../../chat/session.js';
import { OpenELMError } from '../../core/errors.js';

export const spec: CommandSpec = {
  name: 'chat',
  summary: 'interactive chat with an -Instruct model (CoreNet instruct template; /reset, /system TEXT, /exit; Ctrl-C stops an answer)',
  usage: 'openelm chat --model DIR|ORG/NAME [--system TEXT] [--chat-template FILE] [--max-tokens N] [--temperature X] ...',
  flags: [
    ...MODEL_FLAGS,
    { name: 'system', type: 'string', help: 'system prompt' },
    { name: 'chat-template', type: 'string', help: 'Jinja chat template file (default: an --adapter folder\'s tokenizer_config.json, else the model folder\'s, else CoreNet\'s instruct format)' },
    { name: 'max-tokens', type: 'int', help: 'maximum tokens per answer', default: 256, min: 1 },
    { name: 'ctx-size', type: 'int', help: 'context tokens the conversation may use (default: the model\'s)', min: 8 },
    { name: 'temperature', type: 'float', help: 'sampling temperature; 0 = greedy', default: 0, min: 0 },
    { name: 'top-k', type: 'int', help: 'keep the k most likely tokens (0 = off)', default: 0, min: 0 },
    { name: 'top-p', type: 'float', help: 'nucleus sampling mass (1 = off)', default: 1, min: 0, max: 1 },
    { name: 'min-p', type: 'float', help: 'drop tokens below min-p x the top probability (0 = off)', default: 0, min: 0, max: 1 },
    { name: 'repetition-penalty', type: 'float', help: 'HF repetition penalty (default 1.2 for -Instruct models, else 1)', min: 0 },
    { name: 'seed', type: 'int', help: 'random seed for sampling', min: 0 },
    { name: 'ignore-eos', type: 'bool', help: 'keep generating past the end-of-sequence token' },
    { name: 'stats', type: 'bool', help: 'print prompt/cache/speed figures after each answer (stderr)' },
    ...SPECULATIVE_FLAGS,
  ],
};

const HELP = 'commands: /reset (forget the conversation), /system TEXT (set the system prompt; empty removes it), /exit. Ctrl-C stops an answer. End a line with \\ to continue it.';

export async function run(flags: ParsedFlags): Promise<number> {
  const tty = process.stdin.isTTY === true;
  const out = process.stdout, err = process.stderr;
  const modelArg = get.str(flags, 'model')!;
  const m = await loadModel(modelArg, loadOptionsFromFlags(flags));
  let draft: { dispose(): void } | undefined;
  try {
    const spec = await speculativeFromFlags(flags, m);
    draft = spec.draft;
    const turnOpts: ChatTurnOptions = {
      speculative: spec.options,
      ...m.defaultOptions(),
      maxTokens: get.num(flags, 'max-tokens'), temperature: get.num(flags, 'temperature'),
      topK: get.num(flags, 'top-k'), topP: get.num(flags, 'top-p'), minP: get.num(flags, 'min-p'),
      seed: get.num(flags, 'seed'), ignoreEos: get.bool(flags, 'ignore-eos'),
    };
    const rp = get.num(flags, 'repetition-penalty');
    if (rp !== undefined) turnOpts.repetitionPenalty = rp;
    const session = m.chat({ system: get.str(flags, 'system'), contextSize: get.num(flags, 'ctx-size'), defaults: turnOpts });
    const note = (s: string) => err.write(`${s}\n`);
    if (tty) note(`openelm chat: ${modelArg} (${m.chatTemplate.source}, context ${session.contextSize} tokens). /help for commands.`);

    const rl = readline.createInterface({ input: process.stdin, output: tty ? out : undefined, terminal: tty, prompt: '> ' });
    let current: AbortController | undefined;
    let pendingExit = false;
    const interrupt = () => {
      if (current) { current.abort(); return; }
      if (!tty || pendingExit) { rl.close(); return; }
      pendingExit = true;
      out.write('\n(press Ctrl-C again or type /exit to quit)\n');
      rl.prompt();
    };
    rl.on('SIGINT', interrupt); // terminal: readline sees Ctrl-C as input
    process.on('SIGINT', interrupt); // pipe: a real signal

    if (tty) rl.prompt();
    let buffered = '';
    try {
      for await (const raw of rl) {
        pendingExit = false;
        if (raw.endsWith('\\')) { buffered += raw.slice(0, -1) + '\n'; continue; }
        const line = (buffered + raw).trim();
        buffered = '';
        if (line === '') { if (tty) rl.prompt(); continue; }
        if (line === '/exit' || line === '/quit') break;
        if (line === '/help') { note(HELP); if (tty) rl.prompt(); continue; }
        if (line === '/reset') { session.reset(); note('[conversation cleared]'); if (tty) rl.prompt(); continue; }
        if (line === '/system' || line.startsWith('/system ')) {
          const text = line.slice('/system'.length).trim();
          session.setSystem(text || undefined);
          note(text ? '[system prompt set]' : '[system prompt removed]');
          if (tty) rl.prompt();
          continue;
        }
        if (/^\/\w+/.test(line)) { note(`unknown command ${line.split(/\s/)[0]}; ${HELP}`); if (tty) rl.prompt(); continue; }

        current = new AbortController();
        try {
          const turn = session.stream(line, { signal: current.signal });
          for await (const c of turn) out.write(c.text);
          const r = await turn.result;
          out.write('\n');
          if (r.finishReason === 'abort') note('[stopped]');
          if (r.droppedMessages) note(`[dropped the ${r.droppedMessages} oldest messages to fit the context]`);
          if (get.bool(flags, 'stats')) {
            const t = r.timings;
            const sp = r.speculative ? `; ${r.speculative.accepted}/${r.speculative.drafted} drafted tokens accepted` : '';
            note(`[${r.prefilledTokens} prompt tokens prefilled, ${r.cachedTokens} from cache; ${r.ids.length} generated, ${t.predicted_per_second.toFixed(1)} tok/s${sp}; ${r.finishReason}]`);
          }
        } catch (e) {
          if (!(e instanceof OpenELMError)) throw e;
          out.write('\n');
          note(`openelm chat: ${e.message}`);
        } finally {
          current = undefined;
        }
        if (tty) rl.prompt();
      }
    } finally {
      process.off('SIGINT', interrupt);
      rl.close();
    }
    if (tty) out.write('\n');
    return 0;
  } finally {
    draft?.dispose();
    m.dispose();
  }
}
