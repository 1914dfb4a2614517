// The tokenizer endpoints, in the shapes both llama.cpp's server and vLLM's use, so that remote
// clients (lm-evaluation-harness with tokenizer_backend=remote among them) can tokenize exactly as
// the server does:
//   POST /tokenize    llama.cpp {content, add_special?, with_pieces?} → {tokens}
//                     vLLM      {prompt, add_special_tokens?}       → {tokens, count, max_model_len}
//   POST /detokenize  {tokens} → {content, prompt} (llama.cpp reads content, vLLM prompt)
//   GET  /tokenizer_info → eos/bos/unk tokens and ids, chat_template, model_max_length, ...
// As in Hugging Face tokenizers, the literal texts "<s>", "</s>" and "<unk>" are their special ids
// (lm-eval finds the BOS and EOS ids by tokenizing them), and the text between them is encoded
// piece by piece (each with SentencePiece's dummy-prefix space, as the legacy Llama tokenizer does).
// add_special prepends BOS (llama.cpp's default is false, vLLM's true), never EOS, never deduplicated.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { PieceType } from '../tokenizer/sentencepiece-model.js';
import { HttpError } from './openai.js';

type Body = Record<string, unknown>;

export interface TokenizerInfoOptions {
  /** The chat template's Jinja text, when the model has one. */
  chatTemplate?: string;
  /** Tokens per request the server accepts (the context size). */
  maxModelLength: number;
}

/** The special pieces written as text, longest first (so "</s>" wins over "<s>" at one spot). */
function specialStrings(tok: Tokenizer): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const id of [tok.unkId, tok.bosId, tok.eosId, tok.padId]) {
    if (id < 0) continue;
    const type = tok.pieceType(id);
    if (type === PieceType.CONTROL || type === PieceType.UNKNOWN) out.push([tok.idToPiece(id), id]);
  }
  return out.sort((a, b) => b[0].length - a[0].length);
}

/** Token ids of text in which the special pieces' texts stand for their ids. */
export function encodeWithSpecials(tok: Tokenizer, text: string, addBos: boolean): number[] {
  const specials = specialStrings(tok);
  const out: number[] = addBos && tok.bosId >= 0 ? [tok.bosId] : [];
  let pos = 0;
  while (pos <= text.length) {
    let at = -1, hit: [string, number] | undefined;
    for (const s of specials) {
      const i = text.indexOf(s[0], pos);
      if (i >= 0 && (at < 0 || i < at)) { at = i; hit = s; }
    }
    const end = at < 0 ? text.length : at;
    if (end > pos) for (const id of tok.encode(text.slice(pos, end))) out.push(id);
    if (!hit) break;
    out.push(hit[1]);
    pos = at + hit[0].length;
  }
  return out;
}

function flag(b: Body, key: string, dflt: boolean): boolean {
  const v = b[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new HttpError(400, `"${key}" must be true or false`);
  return v;
}

/** POST /tokenize in either shape. */
export function tokenizeResponse(tok: Tokenizer, b: Body, maxModelLength: number): Body {
  if (typeof b.content === 'string') {
    const ids = encodeWithSpecials(tok, b.content, flag(b, 'add_special', false));
    if (!flag(b, 'with_pieces', false)) return { tokens: ids };
    return {
      tokens: ids.map((id) => {
        if (tok.isByte(id)) {
          // As llama.cpp: a byte that is not a character on its own is given as a byte list.
          const byte = tok.byteValue(id);
          return { id, piece: byte < 0x80 ? String.fromCharCode(byte) : [byte] };
        }
        return { id, piece: tok.idToPiece(id).replaceAll('\u2581', ' ') };
      }),
    };
  }
  if (typeof b.prompt === 'string') {
    const ids = encodeWithSpecials(tok, b.prompt, flag(b, 'add_special_tokens', true));
    return { count: ids.length, max_model_len: maxModelLength, tokens: ids, token_strs: null };
  }
  throw new HttpError(400, '"content" must be a string (or "prompt", as vLLM clients send it)');
}

/** POST /detokenize: special tokens are written as their text, as HF's decode() does by default. */
export function detokenizeResponse(tok: Tokenizer, b: Body): Body {
  const t = b.tokens;
  const V = tok.vocabSize;
  if (!Array.isArray(t) || t.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= V)) {
    throw new HttpError(400, `"tokens" must be an array of token ids in [0, ${V})`);
  }
  const text = tok.decode(t as number[], { skipSpecial: false });
  return { content: text, prompt: text };
}

/** GET /tokenizer_info: what lm-eval's remote tokenizer reads (eos_token, bos_token, chat_template). */
export function tokenizerInfoResponse(tok: Tokenizer, opts: TokenizerInfoOptions): Body {
  const piece = (id: number) => (id >= 0 ? tok.idToPiece(id) : null);
  return {
    tokenizer_class: 'LlamaTokenizer',
    bos_token: piece(tok.bosId), bos_token_id: tok.bosId >= 0 ? tok.bosId : null,
    eos_token: piece(tok.eosId), eos_token_id: tok.eosId >= 0 ? tok.eosId : null,
    unk_token: piece(tok.unkId), unk_token_id: tok.unkId,
    pad_token: piece(tok.padId), pad_token_id: tok.padId >= 0 ? tok.padId : null,
    add_bos_token: true, add_eos_token: false,
    vocab_size: tok.vocabSize,
    model_max_length: opts.maxModelLength,
    chat_template: opts.chatTemplate ?? null,
  };
}
