// Tool calls: the generic JSON reply format (scanner, schema, prompt rendering) and the server's
// tools / tool_choice / tool messages, in replies and in stream deltas.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type LoadedModel } from '../src/api.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { corenetInstructTemplate, jinjaTemplate } from '../src/chat/template.js';
import { renderChat, templateSupportsTools, toolReplySchema, ToolReplyScanner, rebaseRefs, type ToolsRequest } from '../src/serve/tools.js';
import { compileJsonSchema } from '../src/generate/constrain/compile.js';
import { tinyModelDir } from './helpers/tiny.js';
import { post as postTo, sseEvents } from './helpers/http.js';
import { ajvCheck } from './helpers/ajv.js';

const WEATHER = { type: 'object', properties: { city: { type: 'string', maxLength: 8 }, unit: { enum: ['C', 'F'] } }, required: ['city', 'unit'] };
const TIME = { type: 'object', properties: { zone: { $ref: '#/$defs/zone' } }, required: ['zone'], $defs: { zone: { enum: ['UTC', 'CET'] } } };
const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city', parameters: WEATHER } },
  { type: 'function', function: { name: 'get_time', parameters: TIME } },
];
const req = (choice: ToolsRequest['choice'], parallel = false): ToolsRequest => ({
  tools: [{ name: 'get_weather', description: 'Weather in a city', parameters: WEATHER }, { name: 'get_time', parameters: TIME }], choice, parallel,
});

test('ToolReplyScanner: the same events fed whole or a character at a time; content decoded, arguments raw', () => {
  const cases: Array<[string, string, Array<{ name: string; arguments: string }>]> = [
    ['{"response": "Hi \\"you\\"\\n\\u00e9!"}', 'Hi "you"\né!', []],
    ['{"tool_call": {"name": "get_weather", "arguments": {"city": "Oslo, \\"N\\"", "unit": "C"}}}', '', [{ name: 'get_weather', arguments: '{"city": "Oslo, \\"N\\"", "unit": "C"}' }]],
    ['{"tool_calls":[{"name":"a","arguments":{"x":[1,{"y":null}]}},{"name":"b","arguments":{}}]}', '', [{ name: 'a', arguments: '{"x":[1,{"y":null}]}' }, { name: 'b', arguments: '{}' }]],
    ['{"response": {"k": [true, 2.5]}}', '{"k": [true, 2.5]}', []],
  ];
  for (const [text, content, calls] of cases) {
    const whole = new ToolReplyScanner();
    const ev1 = whole.push(text);
    const byChar = new ToolReplyScanner();
    const ev2 = [...text].flatMap((c) => byChar.push(c));
    for (const s of [whole, byChar]) {
      assert.equal(s.content, content, text);
      assert.deepEqual(s.toolCalls, calls, text);
    }
    // Per-character events add up to the merged ones.
    const join = (evs: typeof ev1) => JSON.stringify({ content: evs.filter((e) => e.type === 'content').map((e) => (e as { text: string }).text).join(''),
      calls: evs.filter((e) => e.type === 'call'), args: evs.filter((e) => e.type === 'arguments').map((e) => (e as { text: string }).text).join('') });
    assert.equal(join(ev2), join(ev1));
  }
  // Cut short (max_tokens): what came is reported.
  const cut = new ToolReplyScanner();
  cut.push('{"tool_call": {"name": "f", "arguments": {"a": "par');
  assert.deepEqual(cut.toolCalls, [{ name: 'f', arguments: '{"a": "par' }]);
});

test('toolReplySchema: rebased $refs compile; arguments generated under it validate against the tool\'s own schema', () => {
  assert.deepEqual(rebaseRefs({ properties: { a: { $ref: '#/$defs/x' } }, const: { $ref: '#/keep' } }, '#/$defs/t'), { properties: { a: { $ref: '#/$defs/t/$defs/x' } }, const: { $ref: '#/keep' } });
  for (const r of [req('auto'), req('required'), req({ name: 'get_time' }), req('auto', true)]) {
    const schema = toolReplySchema(r, r.parallel ? { type: 'object', properties: { n: { type: 'integer' } } } : undefined);
    assert.doesNotThrow(() => compileJsonSchema(schema), JSON.stringify(r.choice));
    const call = { name: 'get_time', arguments: { zone: 'UTC' } };
    const doc = r.parallel ? { tool_calls: [call] } : { tool_call: call };
    assert.equal(ajvCheck(schema, doc), null);
    assert.notEqual(ajvCheck(schema, r.parallel ? { tool_calls: [{ ...call, arguments: { zone: 'PST' } }] } : { tool_call: { ...call, arguments: { zone: 'PST' } } }), null);
    assert.equal(ajvCheck(schema, { response: 'hello' }) === null, r.choice === 'auto' && !r.parallel);
  }
  const named = toolReplySchema(req({ name: 'get_weather' }));
  assert.notEqual(ajvCheck(named, { tool_call: { name: 'get_time', arguments: { zone: 'UTC' } } }), null, 'a named tool_choice allows that function only');
});

test('renderChat: the CoreNet template gets tools in the system message, earlier calls as JSON and tool results as user turns', () => {
  const t = corenetInstructTemplate();
  assert.equal(templateSupportsTools(t), false);
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Weather in Oslo?' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Oslo","unit":"C"}' } }] },
    { role: 'tool', content: '12 degrees', tool_call_id: 'call_1' },
  ];
  const text = renderChat(t, messages, req('auto'));
  const list = JSON.stringify([{ name: 'get_weather', description: 'Weather in a city', parameters: WEATHER }, { name: 'get_time', parameters: TIME }]);
  assert.equal(text, '<|system|>\nBe brief.\nYou can call these tools:\n' + list + '\nRespond in JSON, either with {"tool_call": {"name": ..., "arguments": {...}}} to call tools, or with {"response": ...} to reply to the user.</s>\n'
    + '<|user|>\nWeather in Oslo?</s>\n'
    + '<|assistant|>\n{"tool_call":{"name":"get_weather","arguments":{"city":"Oslo","unit":"C"}}}</s>\n'
    + '<|user|>\n{"tool_response":{"name":"get_weather","tool_call_id":"call_1","content":"12 degrees"}}</s>\n<|assistant|>\n');
  // tool_choice "none": no tool instructions, the history is still shown.
  const none = renderChat(t, messages, req('none'));
  assert.ok(!none.includes('You can call'));
  assert.ok(none.includes('{"tool_response":'));
});

test('renderChat: a Jinja template that renders tools gets them (and the tool fields of messages) as they are', () => {
  const t = jinjaTemplate("{% if tools %}[TOOLS {% for t in tools %}{{ t.function.name }} {% endfor %}]{% endif %}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% if m.tool_calls %}CALL {{ m.tool_calls[0].function.name }}{% endif %}{% if m.tool_call_id %}ID {{ m.tool_call_id }}{% endif %}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}");
  assert.equal(templateSupportsTools(t), true);
  const messages = [
    { role: 'user', content: 'Q' },
    { role: 'assistant', content: '', tool_calls: [{ id: 'c9', type: 'function' as const, function: { name: 'get_time', arguments: '{}' } }] },
    { role: 'tool', content: 'noon', tool_call_id: 'c9' },
  ];
  assert.equal(renderChat(t, messages, req('required')),
    '[TOOLS get_weather get_time ]<system>Respond in JSON with {"tool_call": {"name": ..., "arguments": {...}}} to call tools.<user>Q<assistant>CALL get_time<tool>noonID c9<assistant>');
});

const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 768, rope_max_length: 768 }, 43);
const model: LoadedModel = await loadModel(dir, { backend: 'js' });
const srv: OpenELMServer = await createServer({ model, port: 0, warmup: false });
await srv.ready;
after(async () => { await srv.close(); model.dispose(); });

const post = (body: unknown) => postTo(`${srv.url}/v1/chat/completions`, body);
const user = [{ role: 'user', content: 'What is the weather in Oslo?' }];
const sampling = { temperature: 1, max_tokens: 120 };

test('tool_choice "required" and a named function: tool_calls with ids, arguments valid under the function\'s schema, finish_reason "tool_calls"', async () => {
  const r = await post({ messages: user, tools, tool_choice: 'required', ...sampling, seed: 1, n: 2 });
  assert.equal(r.status, 200, r.text);
  for (const c of r.json().choices) {
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    assert.equal(c.message.content, null);
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    assert.match(call.id, /^call_[0-9a-f]{24}$/);
    assert.equal(call.type, 'function');
    const schema = call.function.name === 'get_weather' ? WEATHER : TIME;
    assert.equal(ajvCheck(schema, JSON.parse(call.function.arguments)), null, call.function.arguments);
  }
  const named = await post({ messages: user, tools, tool_choice: { type: 'function', function: { name: 'get_time' } }, ...sampling, seed: 2, n: 2 });
  for (const c of named.json().choices) {
    assert.equal(c.message.tool_calls[0].function.name, 'get_time');
    assert.ok(['{"zone": "UTC"}', '{"zone":"UTC"}', '{"zone": "CET"}', '{"zone":"CET"}'].includes(c.message.tool_calls[0].function.arguments));
  }
  const par = await post({ messages: user, tools, tool_choice: 'required', parallel_tool_calls: true, ...sampling, max_tokens: 150, seed: 3 });
  const pc = par.json().choices[0];
  if (pc.finish_reason === 'tool_calls') {
    assert.ok(pc.message.tool_calls.length >= 1);
    for (const call of pc.message.tool_calls) assert.equal(ajvCheck(call.function.name === 'get_weather' ? WEATHER : TIME, JSON.parse(call.function.arguments)), null);
  }
});

test('tool_choice "auto": a reply is either text or tool calls; "none": plain text, tools not in the prompt', async () => {
  const r = (await post({ messages: user, tools, ...sampling, max_tokens: 60, seed: 5, n: 3 })).json();
  for (const c of r.choices) {
    if (c.message.tool_calls) assert.ok(['tool_calls', 'length'].includes(c.finish_reason));
    else { assert.equal(typeof c.message.content, 'string'); assert.ok(['stop', 'length'].includes(c.finish_reason)); }
  }
  const none = (await post({ messages: user, tools, tool_choice: 'none', max_tokens: 4, temperature: 0 })).json();
  const plain = (await post({ messages: user, max_tokens: 4, temperature: 0 })).json();
  assert.equal(none.choices[0].message.content, plain.choices[0].message.content);
  assert.equal(none.usage.prompt_tokens, plain.usage.prompt_tokens);
  assert.equal(none.choices[0].message.tool_calls, undefined);
});

test('streamed tool calls: the first delta has id, type and name, argument deltas add up to the non-streamed arguments', async () => {
  const body = { messages: user, tools, tool_choice: 'required', ...sampling, seed: 9 };
  const plain = (await post(body)).json().choices[0].message.tool_calls[0];
  const s = await post({ ...body, stream: true });
  const events = sseEvents(s.text);
  assert.deepEqual(events[0].choices[0].delta, { role: 'assistant', content: null });
  const deltas = events.flatMap((e) => e.choices[0]?.delta?.tool_calls ?? []);
  assert.equal(deltas[0].index, 0);
  assert.match(deltas[0].id, /^call_/);
  assert.equal(deltas[0].type, 'function');
  assert.equal(deltas[0].function.name, plain.function.name);
  assert.equal(deltas.map((d: { function: { arguments: string } }) => d.function.arguments).join(''), plain.function.arguments);
  assert.ok(deltas.slice(1).every((d: { index: number; id?: string }) => d.index === 0 && d.id === undefined));
  assert.equal(events[events.length - 1].choices[0].finish_reason, 'tool_calls');
});

test('a conversation with tool calls and tool results; bad tool requests are 400s', async () => {
  const turns = [
    ...user,
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo","unit":"C"}' } }] },
    { role: 'tool', tool_call_id: 'call_a', content: '12 C, rain' },
  ];
  const ok = await post({ messages: turns, tools, max_tokens: 3, temperature: 0 });
  assert.equal(ok.status, 200, ok.text);
  const e400 = async (body: unknown, re: RegExp) => { const r = await post(body); assert.equal(r.status, 400, r.text); assert.match(r.json().error.message, re); };
  await e400({ messages: [...user, { role: 'tool', tool_call_id: 'call_zz', content: 'x' }] }, /messages\[1\]\.tool_call_id "call_zz" does not match a tool call of an earlier assistant message/);
  await e400({ messages: [...turns.slice(0, 2), { role: 'tool', content: 'x' }] }, /messages\[2\]\.tool_call_id is required/);
  await e400({ messages: user, tools, tool_choice: { type: 'function', function: { name: 'nope' } } }, /"tool_choice" names the function "nope", which is not in "tools"/);
  await e400({ messages: user, tool_choice: 'required' }, /"tool_choice" needs "tools"/);
  await e400({ messages: user, tools: [...tools, tools[0]] }, /names the function "get_weather" twice/);
  await e400({ messages: user, tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'string', format: 'date' } } } } }] }, /tools\[0\]\.function\.parameters \(f\): .*"format" is not supported/);
  await e400({ messages: user, tools, grammar: 'root ::= "x"' }, /"grammar" cannot be combined with "tools"/);
  await e400({ messages: user, functions: [] }, /deprecated form/);
  await e400({ messages: [{ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f' } }] }] }, /tool_calls\[0\] must be \{"id"/);
});
