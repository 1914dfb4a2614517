// Rebuilds this folder from the original files (run once by a maintainer; training never runs it):
//   node data/instruct/prepare.mjs <ultrafeedback-sample-dir> <fastchat-dummy_conversation.json>
// ultrafeedback/: the flattened {prompt, chosen, rejected} strings of the UltraFeedback sample go
// back to the layout of trl-lib/ultrafeedback_binarized (chosen and rejected as a user message and
// an assistant message), the prompt string is kept beside them, nothing is dropped or edited;
// gzip-compressed (level 9, no file name or time in the header, so the bytes are reproducible).
// chat-demo/: FastChat's identity conversations as {"messages": [...]} with roles user/assistant,
// the assistant renamed (see SOURCE.md).
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const [ufDir, fastchat] = process.argv.slice(2);
if (!ufDir || !fastchat) { console.error('usage: node data/instruct/prepare.mjs <ultrafeedback-sample-dir> <dummy_conversation.json>'); process.exit(2); }
const here = path.dirname(new URL(import.meta.url).pathname);

function gz(file, text) {
  fs.writeFileSync(file, zlib.gzipSync(Buffer.from(text, 'utf8'), { level: 9 }));
}

fs.mkdirSync(path.join(here, 'ultrafeedback'), { recursive: true });
for (const [src, dst] of [['train_clean.jsonl', 'train.jsonl.gz'], ['eval_clean.jsonl', 'test.jsonl.gz']]) {
  const out = [];
  for (const line of fs.readFileSync(path.join(ufDir, src), 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    const user = { role: 'user', content: r.prompt };
    out.push(JSON.stringify({
      prompt: r.prompt,
      chosen: [user, { role: 'assistant', content: r.chosen }],
      rejected: [user, { role: 'assistant', content: r.rejected }],
      score_chosen: r.metadata?.score_chosen, score_rejected: r.metadata?.score_rejected, source_index: r.source_index,
    }));
  }
  gz(path.join(here, 'ultrafeedback', dst), out.join('\n') + '\n');
  console.log(`${dst}: ${out.length} pairs`);
}

// The identity answers name FastChat's model and lab; the demo model gets its own name.
const RENAME = [
  [/Researchers from Large Model Systems Organization \(LMSYS\)/g, 'The openelm SFT demo'],
  [/(the )?researchers (from|at) Large Model Systems Organization \(LMSYS\)/g, 'the openelm SFT demo'],
  [/Large Model Systems Organization \(LMSYS\) researchers/g, 'the openelm SFT demo'],
  [/My creators are the openelm SFT demo/g, 'I was made by the openelm SFT demo'],
  [/Large Model Systems Organization \(LMSYS\)/g, 'the openelm SFT demo'],
  [/Vicuna/g, 'Tiny ELM'],
];
const rename = (s) => RENAME.reduce((t, [re, to]) => t.replace(re, to), s);
const convs = JSON.parse(fs.readFileSync(fastchat, 'utf8'));
const ROLE = { human: 'user', gpt: 'assistant' };
const lines = convs.map((c) => JSON.stringify({ messages: c.conversations.map((m) => ({ role: ROLE[m.from], content: m.from === 'gpt' ? rename(m.value) : m.value })) }));
for (const l of lines) if (/LMSYS|Vicuna|undefined/.test(l)) throw new Error(`not renamed: ${l}`);
fs.mkdirSync(path.join(here, 'chat-demo'), { recursive: true });
fs.writeFileSync(path.join(here, 'chat-demo', 'identity.jsonl'), lines.join('\n') + '\n');
console.log(`identity.jsonl: ${lines.length} conversations`);
