import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { encodeWithSpecials, tokenizeResponse, detokenizeResponse, tokenizerInfoResponse } from '../src/serve/tokenizer-routes.js';
import { HttpError } from '../src/serve/openai.js';
import { loadModel } from '../src/api.js';
import { createServer } from '../src/serve/server.js';
import { CORENET_INSTRUCT_TEMPLATE } from '../src/chat/template.js';
import { tinyModelDir } from './helpers/tiny.js';

const tok = loadTokenizer();

// Hugging Face's LlamaTokenizer (transformers 5.18, legacy mode) on the same tokenizer.model,
// encode(text, add_special_tokens=False): special texts are their ids, the text between them is
// encoded with the dummy-prefix space. (Where HF's BPE and SentencePiece disagree on runs of
// spaces, e.g. " ", the tokenizer follows SentencePiece; those cases are not listed.)
const HF: Array<[string, number[]]> = [
  ['<s>', [1]], ['</s>', [2]], ['<unk>', [0]], ['Hello</s>', [15043, 2]], ['a</s>b', [263, 2, 289]],
  ['</s>\nx', [2, 29871, 13, 29916]], ['x<s>', [921, 1]], ['', []], ['Hello world!', [15043, 3186, 29991]],
];

test('special texts become their ids, as in HF tokenizers; add_special puts BOS in front', () => {
  for (const [text, ids] of HF) {
    assert.deepEqual(encodeWithSpecials(tok, text, false), ids, JSON.stringify(text));
    assert.deepEqual(encodeWithSpecials(tok, text, true), [1, ...ids], JSON.stringify(text));
  }
});

test('/tokenize in llama.cpp shape: {content, add_special, with_pieces} → {tokens}', () => {
  assert.deepEqual(tokenizeResponse(tok, { content: 'Hello world!' }, 64), { tokens: [15043, 3186, 29991] });
  assert.deepEqual(tokenizeResponse(tok, { content: '</s>', add_special: true }, 64), { tokens: [1, 2] });
  assert.deepEqual(tokenizeResponse(tok, { content: 'Hi', with_pieces: true }, 64), { tokens: [{ id: 6324, piece: ' Hi' }] });
  const bytes = tokenizeResponse(tok, { content: '\u{1F600}', with_pieces: true }, 64).tokens as Array<{ piece: unknown }>;
  assert.ok(bytes.some((t) => Array.isArray(t.piece)));
});

test('/tokenize in vLLM shape: {prompt, add_special_tokens (default true)} → {tokens, count, max_model_len}', () => {
  assert.deepEqual(tokenizeResponse(tok, { prompt: 'Hello world!' }, 2048), { count: 4, max_model_len: 2048, tokens: [1, 15043, 3186, 29991], token_strs: null });
  assert.deepEqual(tokenizeResponse(tok, { prompt: '</s>', add_special_tokens: false }, 2048).tokens, [2]);
  assert.deepEqual(tokenizeResponse(tok, { prompt: '<s>', add_special_tokens: false }, 2048).tokens, [1]);
});

test('/detokenize answers both shapes ({content} and {prompt}) and writes special tokens as text', () => {
  assert.deepEqual(detokenizeResponse(tok, { tokens: [1, 15043, 2] }), { content: '<s> Hello</s>', prompt: '<s> Hello</s>' });
  assert.deepEqual(detokenizeResponse(tok, { tokens: [15043, 2, 3186] }).prompt, 'Hello</s> world');
  assert.deepEqual(detokenizeResponse(tok, { tokens: [] }).prompt, '');
});

test('tokenizer routes: bad input is a 400 naming the field', () => {
  const bad = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => e instanceof HttpError && e.status === 400 && re.test(e.message));
  bad(() => tokenizeResponse(tok, { text: 'x' }, 64), /"content" must be a string \(or "prompt"/);
  bad(() => tokenizeResponse(tok, { prompt: 'x', add_special_tokens: 'yes' }, 64), /"add_special_tokens" must be true or false/);
  bad(() => detokenizeResponse(tok, { tokens: [1, 32000] }), /"tokens" must be an array of token ids in \[0, 32000\)/);
  bad(() => detokenizeResponse(tok, { tokens: [1.5] }), /"tokens"/);
  bad(() => detokenizeResponse(tok, {}), /"tokens"/);
});

test('/tokenizer_info has what lm-eval reads', () => {
  const info = tokenizerInfoResponse(tok, { chatTemplate: 'T', maxModelLength: 512 });
  assert.equal(info.eos_token, '</s>');
  assert.equal(info.bos_token, '<s>');
  assert.equal(info.eos_token_id, 2);
  assert.equal(info.bos_token_id, 1);
  assert.equal(info.pad_token, null);
  assert.equal(info.chat_template, 'T');
  assert.equal(info.model_max_length, 512);
  assert.equal(tokenizerInfoResponse(tok, { maxModelLength: 1 }).chat_template, null);
});

// The same calls over HTTP, in the order lm-eval's RemoteTokenizer makes them.
const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-tok-')), 'OpenELM-tiny-Instruct');
fs.renameSync(tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 128, rope_max_length: 128 }, 5), dir);
const model = await loadModel(dir, { backend: 'js' });
const srv = await createServer({ model, port: 0 });
await srv.ready;
after(async () => { await srv.close(); model.dispose(); fs.rmSync(path.dirname(dir), { recursive: true, force: true }); });

test('the remote-tokenizer protocol over HTTP (GET /tokenizer_info, POST /tokenize and /detokenize)', async () => {
  const post = async (p: string, b: unknown) => {
    const r = await fetch(`${srv.url}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
    assert.equal(r.status, 200);
    return r.json() as Promise<Record<string, unknown>>;
  };
  const r = await fetch(`${srv.url}/tokenizer_info`);
  assert.equal(r.status, 200);
  const info = await r.json() as Record<string, unknown>;
  assert.equal(info.eos_token, '</s>');
  assert.equal(info.bos_token, '<s>');
  assert.equal(info.chat_template, CORENET_INSTRUCT_TEMPLATE);
  assert.equal(info.model_max_length, 128);
  assert.deepEqual((await post('/tokenize', { prompt: info.eos_token, add_special_tokens: false })).tokens, [2]);
  assert.deepEqual((await post('/tokenize', { prompt: info.bos_token, add_special_tokens: false })).tokens, [1]);
  const ids = (await post('/tokenize', { prompt: 'The cat sat.', add_special_tokens: false })).tokens as number[];
  assert.equal((await post('/detokenize', { tokens: ids })).prompt, 'The cat sat.');
  assert.deepEqual((await post('/tokenize', { content: 'The cat sat.' })).tokens, ids);
});
