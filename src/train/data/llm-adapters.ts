// LLM-Adapters' instruction data (CommonSense-170k, Math-10k, and the per-task sets): records
// {"instruction", "input", "output"} ("answer" is ignored), rendered into one training document
// with LLM-Adapters' Alpaca-style prompt. The text is byte-for-byte what CoreNet's
// commonsense_170k.py (generate_prompt_and_response, "adapted from LLM-Adapters") produces,
// including the 16 spaces of indentation its triple-quoted f-string carries into every line after
// the first, and the one / two spaces that end the first line; Apple's PEFT runs trained on exactly
// this text, and the prompt is not masked (the loss covers every token).
//
// A file is either a JSON array of records (as LLM-Adapters ships them) or JSON Lines.

import { OpenELMError } from '../../core/errors.js';
import { compressionOf, openByteStream } from './byte-stream.js';

export interface InstructionRecord { instruction: string; input: string; output: string; }

const IND = ' '.repeat(16);

/** CoreNet's generate_prompt_and_response: the prompt and the response, as one string. */
export function llmAdaptersPrompt(r: InstructionRecord): string {
  if (r.input) {
    return 'Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request. \n\n' +
      `${IND}### Instruction:\n${IND}${r.instruction}\n${IND}\n${IND}### Input:\n${IND}${r.input}\n${IND}\n${IND}### Response:\n${IND}${r.output}`;
  }
  return 'Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n' +
    `${IND}### Instruction:\n${IND}${r.instruction}\n${IND}\n${IND}### Response:\n${IND}${r.output}`;
}

/** A record, or the reason it cannot be used. `input` may be missing or null (treated as ""). */
export function instructionRecord(v: unknown): { record?: InstructionRecord; reason?: string } {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return { reason: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  for (const k of ['instruction', 'output'] as const) {
    if (typeof o[k] !== 'string') return { reason: o[k] === undefined ? `no "${k}" field` : `"${k}" is not a string` };
  }
  if (o.input !== undefined && o.input !== null && typeof o.input !== 'string') return { reason: '"input" is not a string' };
  return { record: { instruction: o.instruction as string, input: (o.input as string | null | undefined) ?? '', output: o.output as string } };
}

const utf8 = new TextDecoder('utf-8');

/** Every element of a JSON-array or JSON-Lines file (plain, .gz or .zst), with its 1-based position (array index + 1, or line number). */
export async function readRecords(file: string): Promise<{ items: { value: unknown; at: number; error?: string }[] }> {
  const s = await openByteStream(file, compressionOf(file), 0);
  const parts: Uint8Array[] = [];
  let n = 0;
  try {
    for (let b = await s.read(); b; b = await s.read()) { parts.push(b.slice()); n += b.length; }
  } finally {
    await s.close();
  }
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { all.set(p, o); o += p.length; }
  const text = utf8.decode(all);
  const first = text.search(/\S/);
  if (first >= 0 && text[first] === '[') {
    let arr: unknown;
    try { arr = JSON.parse(text); } catch (e) {
      throw new OpenELMError('data', `data file ${file} starts with "[" but is not valid JSON: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!Array.isArray(arr)) throw new OpenELMError('data', `data file ${file} is not a JSON array of records`);
    return { items: arr.map((value, i) => ({ value, at: i + 1 })) };
  }
  const items: { value: unknown; at: number; error?: string }[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try { items.push({ value: JSON.parse(line), at: i + 1 }); } catch (e) {
      items.push({ value: undefined, at: i + 1, error: `invalid JSON (${(e as Error).message.split('\n')[0]})` });
    }
  });
  return { items };
}
