// Generate a continuation of a prompt, streamed to stdout.
//   node dist/test/examples/generate.js [model folder or hub id]
import { loadModel } from 'openelm';

const source = process.argv[2] ?? 'apple/OpenELM-270M';
const model = await loadModel(source);
try {
  const stream = model.stream('Once upon a time', { maxTokens: 32 });
  for await (const chunk of stream) process.stdout.write(chunk.text);
  const { finishReason, timings } = await stream.result;
  console.log(`\n[${finishReason}; ${timings.predicted_per_second.toFixed(1)} tokens/s]`);
} finally {
  model.dispose();
}
