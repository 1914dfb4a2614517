import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { MODEL_FLAGS, SPECULATIVE_FLAGS, loadOptionsFromFlags } from '../common.js';
import { UsageError } from '../../core/errors.js';
import { loadModel } from '../../api.js';
import { createServer, type ServerOptions } from '../../serve/server.js';

export const spec: CommandSpec = {
  name: 'serve',
  summary: 'OpenAI-compatible HTTP server (llama-server conventions): /v1/chat/completions, /v1/completions, /v1/models, /health, /tokenize, /detokenize',
  usage: 'openelm serve --model DIR|ORG/NAME [--adapter NAME=DIR]... [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--cors ORIGIN]... [--parallel N] [--ctx-size N] [--chat-template FILE]',
  flags: [
    ...MODEL_FLAGS.map((f) => (f.name !== 'adapter' ? f : {
      ...f,
      help: 'NAME=DIR: a LoRA adapter folder (PEFT format) loaded once and applied per request to requests whose "model" is NAME (listed in /v1/models); '
        + 'a bare DIR is merged into the model on load, as elsewhere, and serves every request (repeatable)',
    })),
    { name: 'host', type: 'string', help: 'address to bind; 0.0.0.0 exposes the server to the network', default: '127.0.0.1' },
    { name: 'port', type: 'int', help: 'port (0 = any free port)', default: 8080, min: 0, max: 65535 },
    { name: 'api-key', type: 'string', help: 'require "Authorization: Bearer KEY" (default: $OPENELM_API_KEY, else no auth)' },
    { name: 'cors', type: 'string', help: 'let browser pages from this origin call the server, e.g. https://app.example (repeatable; * allows any); default: no cross-origin access', repeatable: true },
    { name: 'parallel', type: 'int', help: 'requests generated at once (batched), each with its own KV cache; more are queued', default: 4, min: 1 },
    { name: 'batch', type: 'int', help: 'most requests advanced per forward call (default: --parallel; 1 = take turns without batching)', min: 1 },
    { name: 'ctx-size', type: 'int', help: 'KV cache tokens per request slot (default: the model\'s context length)', min: 2 },
    { name: 'chat-template', type: 'string', help: 'Jinja chat template file (default: an --adapter folder\'s tokenizer_config.json, else the model folder\'s, else CoreNet\'s instruct format)' },
    { name: 'alias', type: 'string', help: 'model id reported by /v1/models (default: the hub id, or the model folder\'s name)' },
    { name: 'max-body', type: 'int', help: 'largest request body in bytes', default: 1 << 20, min: 1024 },
    { name: 'quiet', type: 'bool', help: 'do not log requests on stderr' },
    ...SPECULATIVE_FLAGS,
  ],
};

/** --lookup or --draft-model (loaded after the model, on its backend; the server disposes it). */
function speculativeFlags(flags: ParsedFlags): ServerOptions['speculative'] {
  const draftArg = get.str(flags, 'draft-model'), lookup = get.bool(flags, 'lookup');
  if (draftArg !== undefined && lookup) throw new UsageError('--draft-model and --lookup are two ways to draft: give one');
  const maxDraft = get.num(flags, 'draft-max');
  if (lookup) return { lookup: true, maxDraft };
  if (draftArg === undefined) return undefined;
  return { maxDraft, draftModel: (m) => loadModel(draftArg, { ...loadOptionsFromFlags(flags, { namedAdapters: true }), adapter: undefined, adapters: undefined, backend: m.backend }) };
}

/** Each --cors value must be "*" or an origin such as https://app.example (scheme, host, optional port). */
function corsOrigins(values: string[]): string[] {
  for (const v of values) {
    let ok = v === '*';
    try { const u = new URL(v); ok ||= (u.protocol === 'http:' || u.protocol === 'https:') && u.pathname === '/' && !u.search && !u.hash && !u.username; } catch { /* not a URL */ }
    if (!ok) throw new UsageError(`--cors ${JSON.stringify(v)} is not an origin; give scheme and host, e.g. https://app.example or http://localhost:3000 (or * for any)`);
  }
  return values;
}

/** The id clients see: a hub id as given, a local folder by its name only (never the machine's path). */
function publicModelId(modelArg: string): string {
  return fs.existsSync(modelArg) ? path.basename(path.resolve(modelArg)) : modelArg;
}

export async function run(flags: ParsedFlags): Promise<number> {
  const modelArg = get.str(flags, 'model')!;
  const quiet = get.bool(flags, 'quiet');
  const apiKey = get.str(flags, 'api-key') ?? (process.env.OPENELM_API_KEY || undefined);
  const srv = await createServer({
    host: get.str(flags, 'host'), port: get.num(flags, 'port'),
    apiKey, cors: corsOrigins(get.list(flags, 'cors')),
    slots: get.num(flags, 'parallel'), maxBatch: get.num(flags, 'batch'), contextSize: get.num(flags, 'ctx-size'), maxBodyBytes: get.num(flags, 'max-body'),
    modelId: get.str(flags, 'alias') ?? publicModelId(modelArg),
    log: quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
    model: () => loadModel(modelArg, loadOptionsFromFlags(flags, { namedAdapters: true })),
    speculative: speculativeFlags(flags),
  });
  const all = srv.address === '0.0.0.0' || srv.address === '::' ? ' (every network interface)' : '';
  process.stderr.write(`openelm serve: listening on ${srv.url}${all} (loading ${modelArg})\n`);
  if (!srv.loopback && apiKey === undefined) {
    process.stderr.write(`openelm serve: warning: ${srv.url} can be reached from other machines and has no API key, so anyone who reaches it can use the model; set --api-key (or OPENELM_API_KEY), or bind to 127.0.0.1\n`);
  }
  let signals = 0;
  const stop = new Promise<void>((resolve) => {
    const onSig = (sig: string) => {
      signals++;
      if (signals > 1) { process.stderr.write(`openelm serve: ${sig} again, stopping now\n`); void srv.close({ graceMs: 0 }).then(resolve); return; }
      process.stderr.write(`openelm serve: ${sig}, finishing running requests (again to force)\n`);
      void srv.close({ graceMs: 10_000 }).then(resolve);
    };
    process.on('SIGINT', onSig);
    process.on('SIGTERM', onSig);
  });
  try {
    await Promise.race([srv.ready, stop]);
  } catch (e) {
    await srv.close({ graceMs: 0 });
    throw e;
  }
  if (srv.engine) process.stderr.write(`openelm serve: model ready (${srv.engine.slots} slots x ${srv.engine.contextSize} tokens, batches of up to ${srv.engine.maxBatch})\n`);
  await stop;
  process.stderr.write('openelm serve: stopped\n');
  return 0;
}
