// A multi-turn chat that keeps the KV cache between turns: each turn prefills only its new tokens.
//   node dist/test/examples/chat.js [model folder or hub id]
import { loadModel } from 'openelm';

const source = process.argv[2] ?? 'apple/OpenELM-270M-Instruct';
const model = await loadModel(source, {
  onProgress: (p) => { if (p.done) console.error(`downloaded ${p.file}`); },
});
try {
  // Uses CoreNet's instruct template; -Instruct models default to repetition penalty 1.2.
  const chat = model.chat({ system: 'You are a concise assistant.', defaults: { maxTokens: 48 } });
  for (const question of ['What is the capital of France?', 'And of Italy?']) {
    console.log(`> ${question}`);
    const turn = chat.stream(question, { signal: AbortSignal.timeout(60_000) });
    for await (const chunk of turn) process.stdout.write(chunk.text);
    const r = await turn.result;
    console.log(`\n[${r.prefilledTokens} new prompt tokens, ${r.cachedTokens} reused from the cache]`);
  }
} finally {
  model.dispose();
}
