// An OpenAI-compatible HTTP server on node:http, following llama-server's conventions:
//   GET  /health, /v1/health         200 {"status":"ok"}; 503 while the model loads
//   GET  /v1/models                  the one model, OpenAI list shape (+ llama.cpp `meta`)
//   POST /v1/chat/completions        chat template applied; JSON or SSE chat.completion.chunk … [DONE];
//                                    response_format / grammar, tools, logprobs, n
//   POST /v1/completions             prompt(s) → text; JSON or SSE; logprobs + echo (lm-eval), n
//   POST /tokenize, /detokenize      llama.cpp and vLLM shapes; GET /tokenizer_info (tokenizer-routes.ts)
//   POST /apply-template             → {prompt}
//   GET  /metrics                    Prometheus text (metrics.ts)
// Errors are {"error": {"message", "type", "code"}} with code = the HTTP status; local file paths in
// them are cut to their last component. With an API key, every route but /health needs
// "Authorization: Bearer <key>". POST bodies must be JSON (Content-Type checked, size capped). CORS
// is off unless origins are allowed (`cors`). Requests run through the batching Engine: each choice
// has its own KV cache slot, a disconnect aborts its generation. Constrained choices share their
// grammar's compiled masks (the model's GrammarCache); each has its own matcher.

import * as http from 'node:http';
import * as path from 'node:path';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { OpenELMError } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import type { LoadedModel } from '../api.js';
import type { ChatTemplate } from '../chat/template.js';
import { encodeChatText } from '../chat/tokenize.js';
import { parameterCount } from '../model/config.js';
import { stepChunk, type StreamChunk } from '../generate/generate.js';
import { SequenceDecoder } from '../generate/decode.js';
import { promptLogprobs } from '../generate/logprobs.js';
import type { ConstraintSpec } from '../generate/constrain/cache.js';
import { warmConstraintCode } from '../generate/constrain/cache.js';
import { jsonSchemaToGbnf } from '../generate/constrain/json-schema.js';
import type { GrammarMasker } from '../generate/constrain/mask.js';
import { weightsBytes } from '../model/openelm.js';
import { Engine, type EngineOptions, type EngineResult } from './engine.js';
import type { SpeculativeOptions } from '../generate/speculative.js';
import { HttpError, parseCommon, parseMessages, parsePrompts, parseTools, type ParsedCommon } from './openai.js';
import { ChoiceState, type ChoicePrompt, type Kind } from './choices.js';
import { checkToolMessages, renderChat, toolReplySchema } from './tools.js';
import { ServerMetrics } from './metrics.js';
import { detokenizeResponse, tokenizeResponse, tokenizerInfoResponse } from './tokenizer-routes.js';
import { drain, readJsonBody } from './body.js';
import { applyCors, normalizeOrigin } from './cors.js';
import { listen } from './listen.js';
import { redactPaths } from './redact.js';

export interface ServerOptions {
  /** The model, or a function that loads it: the server listens at once and answers 503 until it is ready. */
  model: LoadedModel | (() => Promise<LoadedModel>);
  /** Default 127.0.0.1 (local only); "0.0.0.0" exposes the server to the network. */
  host?: string;
  /** Default 8080; 0 picks a free port (see `url`). */
  port?: number;
  /** Require "Authorization: Bearer <apiKey>" on every route but /health. */
  apiKey?: string;
  /** Origins whose browser pages may call the server (CORS), e.g. "https://app.example"; "*" allows any. Default none. */
  cors?: readonly string[];
  /** The model id reported by /v1/models and in responses (default: the model folder's name). */
  modelId?: string;
  /** Requests generated at once, each with its own KV cache (default 4); more wait in a queue. */
  slots?: number;
  /** KV cache tokens per slot (default: the model's max_context_length). */
  contextSize?: number;
  /** Most requests advanced per forward call (default: slots; 1 = take turns, no batching). */
  maxBatch?: number;
  /**
   * Speculative decoding for every request: prompt lookup, or a draft model (or a function that
   * loads it, e.g. onto the model's backend, once the model is ready; the server then disposes it
   * on close).
   */
  speculative?: Omit<SpeculativeOptions, 'draftModel'> & { draftModel?: LoadedModel | ((model: LoadedModel) => Promise<LoadedModel>) };
  /** Largest request body in bytes (default 1 MiB); larger gets 413. */
  maxBodyBytes?: number;
  /** Overrides the model's chat template. */
  chatTemplate?: ChatTemplate;
  /** One access-log line per request, and internal errors (default: none). */
  log?: (line: string) => void;
  /** Compile and run a small grammar once the model is loaded, so the first constrained request does not pay for the JIT (default true). */
  warmup?: boolean;
  /** Dispose the model on close (default: true when the server loaded it itself). */
  disposeModelOnClose?: boolean;
}

export interface OpenELMServer {
  /** The bound address as a URL, e.g. http://127.0.0.1:8080 (http://0.0.0.0:8080 when bound to every interface). */
  readonly url: string;
  /** The bound address, e.g. 127.0.0.1, 0.0.0.0 or ::. */
  readonly address: string;
  /** False when other machines can connect (the bound address is not a loopback one). */
  readonly loopback: boolean;
  readonly port: number;
  readonly http: http.Server;
  /** Settles when the model is loaded (rejects if loading failed). */
  readonly ready: Promise<void>;
  /** The batching engine, once the model is ready. */
  readonly engine: Engine | undefined;
  /** Stop accepting, let running requests finish for up to graceMs (default 5000), abort the rest, close. */
  close(opts?: { graceMs?: number }): Promise<void>;
}

const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' };

function sendJson(res: http.ServerResponse, status: number, obj: unknown, extra: http.OutgoingHttpHeaders = {}): void {
  if (res.headersSent) { res.end(); return; }
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function errorBody(status: number, message: string, type: string) {
  return { error: { message, type, code: status } };
}

function sendError(res: http.ServerResponse, e: HttpError, extra: http.OutgoingHttpHeaders = {}): void {
  sendJson(res, e.status, errorBody(e.status, e.message, e.type), extra);
}

/** A client error carrying an internal message (an OpenELMError's), with local paths cut. */
function clientError(status: number, e: unknown): HttpError {
  return new HttpError(status, redactPaths(e instanceof Error ? e.message : String(e)));
}

function keyMatches(got: string, want: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(got), h(want));
}

export async function createServer(opts: ServerOptions): Promise<OpenELMServer> {
  const host = opts.host ?? '127.0.0.1';
  const maxBody = opts.maxBodyBytes ?? 1 << 20;
  const log = opts.log ?? (() => undefined);
  const created = Math.floor(Date.now() / 1000);
  let model: LoadedModel | undefined;
  let engine: Engine | undefined;
  let draft: LoadedModel | undefined;
  let loadError: unknown;
  let closing = false;
  const inflight = new Set<http.ServerResponse>();
  const metrics = new ServerMetrics();
  /** What a generation route adds to its access-log line (tokens, finish reasons). */
  const accessInfo = new WeakMap<http.ServerResponse, string>();
  const aborts = new Set<AbortController>();
  const ownsModel = opts.disposeModelOnClose ?? typeof opts.model === 'function';
  // An id given as a local path would show the machine's folders to every client: keep its name only.
  let modelId = opts.modelId !== undefined && path.isAbsolute(opts.modelId) ? path.basename(opts.modelId) : opts.modelId ?? '';

  const corsOrigins = (opts.cors ?? []).map(normalizeOrigin);
  const loadFailure = () => new HttpError(500, `the model failed to load: ${redactPaths(loadError instanceof Error ? loadError.message : String(loadError))}`);
  const template = () => opts.chatTemplate ?? model!.chatTemplate;
  const defaults = () => ({ repetitionPenalty: model!.defaultOptions().repetitionPenalty ?? 1 });

  /** A choice's generation: the engine's, or one step from a scored prompt's last logits. */
  function runChoice(prompt: ChoicePrompt, opts: EngineOptions, signal: AbortSignal): AsyncGenerator<StreamChunk, EngineResult> {
    const m = model!, e = engine!;
    const sc = prompt.scored;
    const ctx = sc?.bosAdded ? [m.tokenizer.bosId, ...prompt.ids] : prompt.ids;
    // Echo with at most one new token (how lm-eval scores): the scoring pass already holds the
    // next token's logits, so the prompt is not run a second time.
    if (sc && opts.maxTokens !== undefined && opts.maxTokens <= 1) {
      const dec = new SequenceDecoder(m.tokenizer, ctx, m.config.eosTokenId, opts);
      return (async function* () {
        const t0 = performance.now();
        if (!dec.done) yield stepChunk(dec.step(sc.next.slice(), ctx.length + 1 <= e.contextSize));
        const ms = performance.now() - t0;
        const timings = { cache_n: 0, prompt_n: ctx.length, prompt_ms: 0, prompt_per_token_ms: 0, prompt_per_second: 0, predicted_n: dec.ids.length, predicted_ms: ms, predicted_per_token_ms: 0, predicted_per_second: 0 };
        return { ids: dec.ids, text: dec.text, finishReason: dec.finish, promptTokens: ctx.length, timings, ...(dec.logprobs ? { logprobs: dec.logprobs } : {}) };
      })();
    }
    return e.submit(ctx, opts, signal);
  }

  interface Plan {
    kind: Kind;
    prompts: ChoicePrompt[];
    p: ParsedCommon;
    /** The grammar every choice follows (compiled once, a matcher per choice). */
    constraint?: { spec: ConstraintSpec; label: string };
    tools: boolean;
  }

  /** Run every choice of one HTTP request (prompts × n, batched by the engine), as JSON or as SSE. */
  async function respond(req: http.IncomingMessage, res: http.ServerResponse, plan: Plan): Promise<void> {
    const { kind, p } = plan;
    const tok = model!.tokenizer;
    let masker: GrammarMasker | undefined;
    if (plan.constraint) {
      try {
        masker = model!.grammars.masker(plan.constraint.spec);
      } catch (e) {
        if (e instanceof OpenELMError) throw clientError(400, e);
        throw e;
      }
    }
    const ac = new AbortController();
    aborts.add(ac);
    // A client that goes away (closed socket before we finished) stops its generation.
    res.on('close', () => { if (!res.writableFinished) ac.abort(); aborts.delete(ac); });
    const states: ChoiceState[] = [];
    const gens: Array<AsyncGenerator<StreamChunk, EngineResult>> = [];
    try {
      plan.prompts.forEach((prompt, pi) => {
        for (let k = 0; k < p.n; k++) {
          const index = pi * p.n + k;
          const seed = p.options.seed === undefined ? undefined : (p.options.seed + k) % 2 ** 32;
          const opts: EngineOptions = { ...p.options, seed, ...(p.logprobs !== undefined ? { logprobs: p.logprobs } : {}), ...(masker ? { constraint: masker.newMatcher() } : {}) };
          states.push(new ChoiceState(index, tok, prompt, { kind, echo: p.echo, logprobs: p.logprobs !== undefined, tools: plan.tools }));
          gens.push(runChoice(prompt, opts, ac.signal));
        }
      });
    } catch (e) {
      ac.abort();
      for (const g of gens) void g.return(undefined as never).catch(() => undefined);
      if (e instanceof OpenELMError) throw clientError(400, e);
      throw e;
    }
    metrics.choices += states.length;
    if (plan.constraint) for (let i = 0; i < states.length; i++) metrics.constraint(plan.constraint.label);
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const base = () => ({ id, object: `${object}${kind === 'chat' && p.stream ? '.chunk' : ''}`, created: Math.floor(Date.now() / 1000), model: modelId, system_fingerprint: `openelm-${VERSION}` });
    const shutdownError = () => new HttpError(503, 'the server is shutting down; the generation was stopped');
    const usage = () => {
      const promptTokens = plan.prompts.reduce((a, q) => a + q.ids.length, 0);
      const completion = states.reduce((a, st) => a + (st.result?.ids.length ?? 0), 0);
      return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
    };
    const note = (st: ChoiceState[]) => {
      const u = usage();
      accessInfo.set(res, `prompt=${u.prompt_tokens} completion=${u.completion_tokens} choices=${st.length} finish=${st.map((x) => x.result ? x.finishReason() : '-').join(',')}${plan.constraint ? ` constraint=${plan.constraint.label}` : ''}`);
    };

    if (!p.stream) {
      await Promise.all(gens.map(async (g, i) => {
        let r = await g.next();
        while (!r.done) { states[i].push(r.value); r = await g.next(); }
        states[i].result = r.value;
      }));
      note(states);
      if (ac.signal.aborted) return; // the client is gone
      if (states.some((st) => st.result!.finishReason === 'abort')) { sendError(res, shutdownError()); return; }
      sendJson(res, 200, { ...base(), choices: states.map((st) => st.choice()), usage: usage(), timings: states[0].result!.timings });
      return;
    }

    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    const send = (obj: unknown) => { if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`); };
    const chatChunk = (st: ChoiceState, delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
      send({ ...base(), choices: [{ index: st.index, delta, logprobs: st.takeLogprobs(), finish_reason: finish }], ...extra });
    const textChunk = (st: ChoiceState, text: string, finish: string | null, extra: Record<string, unknown> = {}) =>
      send({ ...base(), choices: [{ index: st.index, text, logprobs: st.takeLogprobs(), finish_reason: finish }], ...extra });
    const onChunk = (st: ChoiceState, c: StreamChunk) => {
      const { text, events } = st.push(c);
      if (kind === 'text') { if (text || st.hasPendingLogprobs) textChunk(st, text, null); return; }
      if (!plan.tools) { if (text || st.hasPendingLogprobs) chatChunk(st, { content: text }, null); return; }
      for (const ev of events) {
        if (ev.type === 'content') chatChunk(st, { content: ev.text }, null);
        else if (ev.type === 'call') chatChunk(st, { tool_calls: [{ index: ev.index, id: st.callId(ev.index), type: 'function', function: { name: ev.name, arguments: '' } }] }, null);
        else chatChunk(st, { tool_calls: [{ index: ev.index, function: { arguments: ev.text } }] }, null);
      }
    };
    try {
      for (const st of states) {
        if (kind === 'chat') send({ ...base(), choices: [{ index: st.index, delta: { role: 'assistant', content: plan.tools ? null : '' }, logprobs: null, finish_reason: null }] });
        else if (p.echo) { const e = st.echoPart(); send({ ...base(), choices: [{ index: st.index, text: e.text, logprobs: e.logprobs, finish_reason: null }] }); }
      }
      const next = (i: number) => gens[i].next().then((r) => [i, r] as const);
      const pending = new Map(gens.map((_, i) => [i, next(i)]));
      while (pending.size) {
        const [i, r] = await Promise.race(pending.values());
        const st = states[i];
        if (!r.done) { onChunk(st, r.value); pending.set(i, next(i)); continue; }
        pending.delete(i);
        st.result = r.value;
        if (ac.signal.aborted || r.value.finishReason === 'abort') continue;
        if (kind === 'chat') chatChunk(st, {}, st.finishReason(), { timings: r.value.timings });
        else textChunk(st, '', st.finishReason(), { timings: r.value.timings });
      }
      note(states);
      if (ac.signal.aborted) return;
      if (states.some((st) => st.result!.finishReason === 'abort')) {
        const e = shutdownError();
        send(errorBody(e.status, e.message, e.type));
      } else if (p.includeUsage) send({ ...base(), choices: [], usage: usage(), timings: states[0].result!.timings });
      if (!res.writableEnded && !res.destroyed) res.write('data: [DONE]\n\n');
    } catch (e) {
      ac.abort();
      log(`internal error during a stream: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      send(errorBody(500, clientError(500, e).message, 'server_error'));
    } finally {
      res.end();
    }
  }

  type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> | void;
  const body = (req: http.IncomingMessage) => readJsonBody(req, maxBody);

  const routes: Record<string, { method: string; auth: boolean; model: boolean; run: Handler }> = {
    '/health': { method: 'GET', auth: false, model: false, run: (_q, res) => health(res) },
    '/v1/health': { method: 'GET', auth: false, model: false, run: (_q, res) => health(res) },
    '/v1/models': { method: 'GET', auth: true, model: true, run: (_q, res) => models(res) },
    '/models': { method: 'GET', auth: true, model: true, run: (_q, res) => models(res) },
    '/v1/chat/completions': { method: 'POST', auth: true, model: true, run: chat },
    '/chat/completions': { method: 'POST', auth: true, model: true, run: chat },
    '/v1/completions': { method: 'POST', auth: true, model: true, run: completions },
    '/completions': { method: 'POST', auth: true, model: true, run: completions },
    '/tokenize': { method: 'POST', auth: true, model: true, run: tokenize },
    '/detokenize': { method: 'POST', auth: true, model: true, run: detokenize },
    '/apply-template': { method: 'POST', auth: true, model: true, run: applyTemplate },
    '/metrics': { method: 'GET', auth: true, model: false, run: metricsRoute },
    '/tokenizer_info': { method: 'GET', auth: true, model: true, run: (_q, res) => sendJson(res, 200, tokenizerInfoResponse(model!.tokenizer, { chatTemplate: template().text, maxModelLength: engine!.contextSize })) },
  };

  function health(res: http.ServerResponse): void {
    if (model) sendJson(res, 200, { status: 'ok' });
    else if (loadError) sendError(res, loadFailure());
    else sendJson(res, 503, errorBody(503, 'Loading model', 'unavailable_error'));
  }

  function models(res: http.ServerResponse): void {
    const c = model!.config;
    sendJson(res, 200, {
      object: 'list',
      data: [{
        id: modelId, object: 'model', created, owned_by: 'openelm',
        meta: { n_vocab: c.vocabSize, n_ctx_train: c.maxContextLength, n_ctx: engine!.contextSize, n_embd: c.modelDim, n_params: parameterCount(c), size: weightsBytes(model!.model.weights), slots: engine!.slots, max_batch: engine!.maxBatch, backend: model!.model.backend.name },
      }],
    });
  }

  /** 400 for a prompt the engine would refuse (out-of-vocabulary ids, too long), before anything runs. */
  function checkPrompt(ids: readonly number[], what: string): void {
    const V = model!.config.vocabSize;
    if (ids.length === 0) throw new HttpError(400, `${what} is empty (no tokens)`);
    for (const t of ids) if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new HttpError(400, `${what}: token id ${t} is outside the vocabulary [0, ${V})`);
    if (ids.length >= engine!.contextSize) throw new HttpError(400, `${what} has ${ids.length} tokens but the context holds ${engine!.contextSize}; shorten it`);
  }

  function constraintLabel(spec: ConstraintSpec | undefined): { spec: ConstraintSpec; label: string } | undefined {
    return spec ? { spec, label: spec.kind } : undefined;
  }

  async function chat(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const b = await body(req);
    const msgs = parseMessages(b);
    checkToolMessages(msgs);
    const tools = parseTools(b);
    const p = parseCommon(b, model!.config.vocabSize, defaults(), 'chat');
    const t = template();
    let ids: number[];
    try {
      ids = encodeChatText(model!.tokenizer, renderChat(t, msgs, tools), t);
    } catch (e) {
      if (e instanceof OpenELMError) throw clientError(400, e);
      throw e;
    }
    checkPrompt(ids, 'the prompt');
    let constraint = constraintLabel(p.constraint);
    const toolMode = tools !== undefined && tools.choice !== 'none';
    if (toolMode) {
      if (p.constraint?.kind === 'grammar') throw new HttpError(400, '"grammar" cannot be combined with "tools" (the reply follows the tool-call format)');
      // Each function's schema alone first, so that an error names the tool.
      tools.tools.forEach((tool, i) => {
        try { jsonSchemaToGbnf(tool.parameters); } catch (e) {
          if (e instanceof OpenELMError) throw new HttpError(400, `tools[${i}].function.parameters (${tool.name}): ${redactPaths(e.message)}`);
          throw e;
        }
      });
      const response = p.constraint?.kind === 'json_schema' ? p.constraint.schema : p.constraint?.kind === 'json_object' ? { type: 'object' } : undefined;
      constraint = { spec: { kind: 'json_schema', schema: toolReplySchema(tools, response) }, label: 'tools' };
    }
    await respond(req, res, { kind: 'chat', prompts: [{ ids }], p, constraint, tools: toolMode });
  }

  async function completions(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const b = await body(req);
    const raw = parsePrompts(b);
    if (typeof b.suffix === 'string' && b.suffix) throw new HttpError(400, '"suffix" is not supported by this server');
    const p = parseCommon(b, model!.config.vocabSize, defaults(), 'text');
    const tok = model!.tokenizer;
    // Like llama-server, a text prompt starts with BOS.
    const prompts: ChoicePrompt[] = raw.map((x) => (typeof x === 'string' ? { ids: tok.encode(x, { bos: true }), text: x } : { ids: x }));
    prompts.forEach((q, i) => checkPrompt(q.ids, prompts.length > 1 ? `prompt ${i}` : 'the prompt'));
    if (p.echo && p.logprobs !== undefined) {
      // Scored with the model to itself, between decode steps; BOS goes in front when missing.
      for (const q of prompts) {
        q.scored = await engine!.exclusive(() => promptLogprobs(model!.model, q.ids, { bosId: tok.bosId, top: p.logprobs }));
      }
    }
    await respond(req, res, { kind: 'text', prompts, p, constraint: constraintLabel(p.constraint), tools: false });
  }

  async function metricsRoute(_req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const text = metrics.render(engine, model ? model.grammars.stats() : undefined);
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async function tokenize(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    sendJson(res, 200, tokenizeResponse(model!.tokenizer, await body(req), engine!.contextSize));
  }

  async function detokenize(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    sendJson(res, 200, detokenizeResponse(model!.tokenizer, await body(req)));
  }

  async function applyTemplate(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const b = await body(req);
    const msgs = parseMessages(b);
    try {
      sendJson(res, 200, { prompt: template().render(msgs, { addGenerationPrompt: true }) });
    } catch (e) {
      if (e instanceof OpenELMError) throw clientError(400, e);
      throw e;
    }
  }

  const server = http.createServer((req, res) => {
    const t0 = performance.now();
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
    inflight.add(res);
    res.on('close', () => {
      inflight.delete(res);
      const ms = performance.now() - t0;
      metrics.request(routes[route] ? route : 'other', res.statusCode, ms / 1000);
      const extra = accessInfo.get(res);
      log(`${new Date().toISOString()} ${req.socket.remoteAddress ?? '-'} "${req.method} ${route}" ${res.statusCode} ${ms.toFixed(0)}ms${extra ? ` ${extra}` : ''}${res.writableFinished ? '' : ' (client closed)'}`);
    });
    const fail = (e: unknown) => {
      if (e instanceof HttpError) {
        // The unread upload is dropped and the connection closed, so the client still sees the answer.
        if (e.status === 413 || e.status === 415) { drain(req, 16 * maxBody); sendError(res, e, { connection: 'close' }); return; }
        sendError(res, e);
        return;
      }
      log(`internal error on ${req.method} ${route}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      if (!res.headersSent) sendError(res, clientError(500, e));
      else res.end();
    };
    try {
      applyCors(req, res, corsOrigins);
      if (req.method === 'OPTIONS') { res.writeHead(204, { allow: 'GET, POST, OPTIONS' }); res.end(); return; }
      if (closing) throw new HttpError(503, 'the server is shutting down');
      const r = routes[route];
      if (!r) throw new HttpError(404, `no route ${req.method} ${route}`);
      if (req.method !== r.method && !(r.method === 'GET' && req.method === 'HEAD')) {
        res.setHeader('allow', r.method);
        sendJson(res, 405, errorBody(405, `${route} takes ${r.method}, not ${req.method}`, 'invalid_request_error'));
        return;
      }
      if (r.auth && opts.apiKey !== undefined) {
        const h = req.headers.authorization ?? '';
        const key = /^Bearer\s+(.+)$/i.exec(h)?.[1] ?? (typeof req.headers['x-api-key'] === 'string' ? req.headers['x-api-key'] : '');
        if (!key || !keyMatches(key.trim(), opts.apiKey)) throw new HttpError(401, key ? 'invalid API key' : 'missing API key: send "Authorization: Bearer <key>"');
      }
      if (r.model && !model) {
        throw loadError ? loadFailure() : new HttpError(503, 'Loading model');
      }
      const out = r.run(req, res);
      if (out) out.catch(fail);
    } catch (e) {
      fail(e);
    }
  });
  server.keepAliveTimeout = 5000;

  const bound = await listen(server, host, opts.port ?? 8080);

  const ready = (async () => {
    try {
      const m = typeof opts.model === 'function' ? await opts.model() : opts.model;
      try {
        const sp = opts.speculative;
        if (typeof sp?.draftModel === 'function') draft = await sp.draftModel(m);
        const speculative = sp ? { ...sp, draftModel: draft ?? (sp.draftModel as LoadedModel | undefined) } : undefined;
        engine = new Engine(m.model, m.tokenizer, { slots: opts.slots, contextSize: opts.contextSize, maxBatch: opts.maxBatch, speculative });
      } catch (e) {
        draft?.dispose(); draft = undefined;
        if (ownsModel) m.dispose();
        throw e;
      }
      if (opts.warmup ?? true) warmConstraintCode(m.tokenizer);
      modelId ||= path.basename(path.resolve(m.dir));
      if (closing) { if (ownsModel) m.dispose(); throw new OpenELMError('serve', 'the server was closed while the model loaded'); }
      model = m;
    } catch (e) {
      loadError = e;
      throw e;
    }
  })();
  ready.catch(() => undefined);

  let closed: Promise<void> | undefined;
  return {
    url: bound.url, address: bound.address, loopback: bound.loopback, port: bound.port, http: server, ready,
    get engine() { return engine; },
    close(copts = {}) {
      closed ??= (async () => {
        closing = true;
        const done = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        const until = Date.now() + (copts.graceMs ?? 5000);
        while (inflight.size && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        engine?.abortAll();
        for (const a of aborts) a.abort();
        await new Promise((r) => setTimeout(r, 20));
        server.closeAllConnections();
        await done;
        if (ownsModel) model?.dispose();
        draft?.dispose();
      })();
      return closed;
    },
  };
}
