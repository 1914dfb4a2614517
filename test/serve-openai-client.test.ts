// The official `openai` npm client against our server: chat, streaming, tools (including the
// client's own stream accumulator and a tool-result turn), response_format, logprobs, completions
// with echo. What a user of the client sees is what this checks.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { loadModel, type LoadedModel } from '../src/api.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { tinyModelDir } from './helpers/tiny.js';
import { ajvCheck } from './helpers/ajv.js';

const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 512, rope_max_length: 512 }, 53);
const model: LoadedModel = await loadModel(dir, { backend: 'js' });
const srv: OpenELMServer = await createServer({ model, port: 0, apiKey: 'test-key', modelId: 'openelm-tiny', warmup: false });
await srv.ready;
const client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'test-key', maxRetries: 0, timeout: 120_000 });
after(async () => { await srv.close(); model.dispose(); });

const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello!' }];

test('openai client: models, chat, and a stream whose deltas add up to the same reply', async () => {
  const list = await client.models.list();
  assert.equal(list.data[0].id, 'openelm-tiny');
  const r = await client.chat.completions.create({ model: 'openelm-tiny', messages, max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.usage?.completion_tokens, 8);
  const stream = await client.chat.completions.create({ model: 'openelm-tiny', messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } });
  let text = '', finish: string | null = null, usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, r.choices[0].message.content);
  assert.equal(finish, r.choices[0].finish_reason);
  assert.deepEqual(usage, r.usage);
  await assert.rejects(new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'wrong', maxRetries: 0 }).models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
});

test('openai client: response_format json_schema gives parseable, valid JSON; a bad schema is a BadRequestError', async () => {
  const schema = { type: 'object', properties: { answer: { type: 'string', maxLength: 10 }, confidence: { type: 'number', minimum: 0, maximum: 1 } }, required: ['answer', 'confidence'], additionalProperties: false };
  const r = await client.chat.completions.create({
    model: 'openelm-tiny', messages, temperature: 1, seed: 3, max_tokens: 120, n: 2,
    response_format: { type: 'json_schema', json_schema: { name: 'reply', schema, strict: true } },
  });
  for (const c of r.choices) {
    assert.equal(c.finish_reason, 'stop');
    assert.equal(ajvCheck(schema, JSON.parse(c.message.content!)), null, c.message.content!);
  }
  const o = await client.chat.completions.create({ model: 'openelm-tiny', messages, temperature: 1, seed: 4, max_tokens: 60, response_format: { type: 'json_object' } });
  assert.match(o.choices[0].message.content!, /^\{/);
  await assert.rejects(
    client.chat.completions.create({ model: 'openelm-tiny', messages, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'string', format: 'uri' } } } }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && /"format" is not supported/.test(e.message),
  );
});

test('openai client: tools — a call, the stream helper\'s accumulated tool call, and a tool-result turn', async () => {
  const tools: OpenAI.Chat.ChatCompletionTool[] = [{
    type: 'function',
    function: { name: 'lookup', description: 'Look a word up', parameters: { type: 'object', properties: { word: { type: 'string', maxLength: 12 } }, required: ['word'] } },
  }];
  const r = await client.chat.completions.create({ model: 'openelm-tiny', messages, tools, tool_choice: 'required', temperature: 1, seed: 7, max_tokens: 80 });
  const c = r.choices[0];
  assert.equal(c.finish_reason, 'tool_calls');
  const call = c.message.tool_calls![0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
  assert.equal(call.function.name, 'lookup');
  assert.equal(typeof JSON.parse(call.function.arguments).word, 'string');
  // The client's streaming helper puts the deltas back together.
  const runner = client.chat.completions.stream({ model: 'openelm-tiny', messages, tools, tool_choice: 'required', temperature: 1, seed: 7, max_tokens: 80 });
  const final = await runner.finalChatCompletion();
  const fcall = final.choices[0].message.tool_calls![0] as OpenAI.Chat.ChatCompletionMessageFunctionToolCall;
  assert.equal(fcall.function.name, call.function.name);
  assert.equal(fcall.function.arguments, call.function.arguments);
  assert.match(fcall.id, /^call_/);
  // Send the result back, as an application would.
  const next = await client.chat.completions.create({
    model: 'openelm-tiny', tools, max_tokens: 4, temperature: 0,
    messages: [...messages, c.message as OpenAI.Chat.ChatCompletionMessageParam, { role: 'tool', tool_call_id: call.id, content: 'a greeting' }],
  });
  assert.equal(next.choices[0].message.role, 'assistant');
  await assert.rejects(
    client.chat.completions.create({ model: 'openelm-tiny', messages: [...messages, { role: 'tool', tool_call_id: 'call_unknown', content: 'x' }] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && /does not match a tool call/.test(e.message),
  );
});

test('openai client: chat logprobs and completions with echo + logprobs', async () => {
  const r = await client.chat.completions.create({ model: 'openelm-tiny', messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2 });
  const lp = r.choices[0].logprobs!.content!;
  assert.ok(lp.length >= 1 && lp.length <= 4);
  for (const t of lp) { assert.ok(t.logprob <= 0); assert.equal(t.top_logprobs.length, 2); }
  const ids = model.tokenizer.encode('The sky is', { bos: false });
  const c = await client.completions.create({ model: 'openelm-tiny', prompt: [ids, ids.slice(1)], echo: true, logprobs: 1, max_tokens: 1, temperature: 0 });
  assert.equal(c.choices.length, 2);
  const l0 = c.choices.find((x) => x.index === 0)!.logprobs!;
  assert.equal(l0.token_logprobs!.length, ids.length + 1);
  assert.equal(l0.token_logprobs![0], null);
  assert.ok(c.choices[0].text.startsWith('The sky is'));
});
