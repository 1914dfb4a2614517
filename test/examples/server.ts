// Run the OpenAI-compatible server in-process and talk to it with fetch (any OpenAI client works the
// same way: base URL http://127.0.0.1:<port>/v1).
//   node dist/test/examples/server.js [model folder or hub id]
import { createServer, loadModel } from 'openelm';

const source = process.argv[2] ?? 'apple/OpenELM-270M-Instruct';
const server = await createServer({ model: () => loadModel(source), port: 0, modelId: 'openelm' });
await server.ready;
try {
  const res = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: 'Say hello.' }],
      max_tokens: 24, temperature: 0, stream: true,
    }),
  });
  // Server-sent events: one `data: {chat.completion.chunk}` per piece of text, then `data: [DONE]`.
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(bytes, { stream: true });
    for (let end = buffered.indexOf('\n\n'); end >= 0; end = buffered.indexOf('\n\n')) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      const data = event.replace(/^data: /, '');
      if (data === '[DONE]') { console.log('\n[done]'); continue; }
      const chunk = JSON.parse(data);
      process.stdout.write(chunk.choices[0]?.delta?.content ?? '');
    }
  }
} finally {
  await server.close();
}
