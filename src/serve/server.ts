// An OpenAI-compatible HTTP server on node:http, following llama-server's conventions:
//   GET  /health, /v1/health         200 {"status":"ok"}; 503 while the model loads
//   GET  /v1/models                  the one model, OpenAI list shape (+ llama.cpp `meta`)
//   POST /v1/chat/completions        chat template applied; JSON or SSE chat.completion.chunk … [DONE]
//   POST /v1/completions             prompt → text; JSON or SSE
//   POST /tokenize, /detokenize      llama.cpp and vLLM shapes; GET /tokenizer_info (tokenizer-routes.ts)
//   POST /apply-template             → {prompt}
// Errors are {"error": {"message", "type", "code"}} with code = the HTTP status; local file paths in
// them are cut to their last component. With an API key, every route but /health needs
// "Authorization: Bearer <key>". POST bodies must be JSON (Content-Type checked, size capped). CORS
// is off unless origins are allowed (`cors`). Requests run through the batching Engine: each request
// has its own KV cache slot, a disconnect aborts its generation.

import * as http from 'node:http';
import * as path from 'node:path';
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { OpenELMError } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import type { LoadedModel } from '../api.js';
import type { ChatTemplate } from '../chat/template.js';
import { encodeChatText } from '../chat/tokenize.js';
import { parameterCount } from '../model/config.js';
import type { StreamChunk } from '../generate/generate.js';
import { weightsBytes } from '../model/openelm.js';
import { Engine, type EngineResult } from './engine.js';
import type { SpeculativeOptions } from '../generate/speculative.js';
import { HttpError, parseCommon, parseMessages, parsePrompt, type ParsedCommon } from './openai.js';
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
  /** One line per request (default: none). */
  log?: (line: string) => void;
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
  const aborts = new Set<AbortController>();
  const ownsModel = opts.disposeModelOnClose ?? typeof opts.model === 'function';
  // An id given as a local path would show the machine's folders to every client: keep its name only.
  let modelId = opts.modelId !== undefined && path.isAbsolute(opts.modelId) ? path.basename(opts.modelId) : opts.modelId ?? '';

  const corsOrigins = (opts.cors ?? []).map(normalizeOrigin);
  const loadFailure = () => new HttpError(500, `the model failed to load: ${redactPaths(loadError instanceof Error ? loadError.message : String(loadError))}`);
  const template = () => opts.chatTemplate ?? model!.chatTemplate;
  const defaults = () => ({ repetitionPenalty: model!.defaultOptions().repetitionPenalty ?? 1 });

  function usage(r: EngineResult) {
    return { prompt_tokens: r.promptTokens, completion_tokens: r.ids.length, total_tokens: r.promptTokens + r.ids.length };
  }

  /** Run a generation for one HTTP request, as JSON or as SSE. `shape` makes the response objects. */
  async function generateResponse(req: http.IncomingMessage, res: http.ServerResponse, ids: number[], p: ParsedCommon, kind: 'chat' | 'text'): Promise<void> {
    const ac = new AbortController();
    aborts.add(ac);
    // A client that goes away (closed socket before we finished) stops its generation.
    res.on('close', () => { if (!res.writableFinished) ac.abort(); aborts.delete(ac); });
    let gen: AsyncGenerator<StreamChunk, EngineResult>;
    try {
      gen = engine!.submit(ids, p.options, ac.signal);
    } catch (e) {
      if (e instanceof OpenELMError) throw clientError(400, e);
      throw e;
    }
    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const object = kind === 'chat' ? 'chat.completion' : 'text_completion';
    const base = () => ({ id, object: `${object}${kind === 'chat' && p.stream ? '.chunk' : ''}`, created: Math.floor(Date.now() / 1000), model: modelId, system_fingerprint: `openelm-${VERSION}` });
    const finishReason = (r: EngineResult) => (r.finishReason === 'length' ? 'length' : 'stop');
    const shutdownError = () => new HttpError(503, 'the server is shutting down; the generation was stopped');

    if (!p.stream) {
      let r: IteratorResult<StreamChunk, EngineResult>;
      do r = await gen.next(); while (!r.done);
      const result = r.value;
      if (ac.signal.aborted) return; // the client is gone
      if (result.finishReason === 'abort') { sendError(res, shutdownError()); return; }
      const choice = kind === 'chat'
        ? { index: 0, message: { role: 'assistant', content: result.text }, logprobs: null, finish_reason: finishReason(result) }
        : { index: 0, text: result.text, logprobs: null, finish_reason: finishReason(result) };
      sendJson(res, 200, { ...base(), choices: [choice], usage: usage(result), timings: result.timings });
      return;
    }

    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    const send = (obj: unknown) => { if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`); };
    const chunk = (text: string | undefined, finish: string | null, extra: Record<string, unknown> = {}) => {
      const choice = kind === 'chat'
        ? { index: 0, delta: text === undefined ? {} : { content: text }, logprobs: null, finish_reason: finish }
        : { index: 0, text: text ?? '', logprobs: null, finish_reason: finish };
      send({ ...base(), choices: [choice], ...extra });
    };
    try {
      if (kind === 'chat') send({ ...base(), choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] });
      let r = await gen.next();
      while (!r.done) {
        if (r.value.text) chunk(r.value.text, null);
        r = await gen.next();
      }
      const result = r.value;
      if (ac.signal.aborted) return;
      if (result.finishReason === 'abort') {
        const e = shutdownError();
        send(errorBody(e.status, e.message, e.type));
      } else {
        chunk(undefined, finishReason(result), { timings: result.timings });
        if (p.includeUsage) send({ ...base(), choices: [], usage: usage(result), timings: result.timings });
      }
      if (!res.writableEnded && !res.destroyed) res.write('data: [DONE]\n\n');
    } catch (e) {
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

  async function chat(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const b = await body(req);
    const msgs = parseMessages(b);
    const p = parseCommon(b, model!.config.vocabSize, defaults());
    const t = template();
    let ids: number[];
    try {
      ids = encodeChatText(model!.tokenizer, t.render(msgs, { addGenerationPrompt: true }), t);
    } catch (e) {
      if (e instanceof OpenELMError) throw clientError(400, e);
      throw e;
    }
    await generateResponse(req, res, ids, p, 'chat');
  }

  async function completions(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const b = await body(req);
    const prompt = parsePrompt(b);
    if (b.echo === true) throw new HttpError(400, '"echo" is not supported by this server');
    if (typeof b.suffix === 'string' && b.suffix) throw new HttpError(400, '"suffix" is not supported by this server');
    const p = parseCommon(b, model!.config.vocabSize, defaults());
    // Like llama-server, a text prompt starts with BOS.
    const ids = typeof prompt === 'string' ? model!.tokenizer.encode(prompt, { bos: true }) : prompt;
    await generateResponse(req, res, ids, p, 'text');
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
      log(`${req.method} ${route} ${res.statusCode}${res.writableFinished ? '' : ' (client closed)'} ${(performance.now() - t0).toFixed(0)}ms`);
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
