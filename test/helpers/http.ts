// HTTP helpers for the server tests: one POST that keeps the raw text (error bodies, SSE streams)
// and one parser for an OpenAI-style event stream.
import assert from 'node:assert/strict';

/** POST `body` (JSON-encoded unless already a string) with a JSON content type unless `headers` set one. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: 'POST', headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/**
 * The events of a server-sent stream: every part is `data: …`, the last one and only it is
 * `data: [DONE]`, and the others are JSON.
 */
export function sseEvents(text: string) {
  assert.ok(text.endsWith('data: [DONE]\n\n'), 'the stream ends with data: [DONE]');
  const parts = text.split('\n\n').filter((p) => p.length > 0);
  for (const p of parts) assert.match(p, /^data: /);
  const data = parts.map((p) => p.slice(6));
  assert.equal(data.filter((d) => d === '[DONE]').length, 1, 'one [DONE]');
  return data.slice(0, -1).map((d) => JSON.parse(d));
}
