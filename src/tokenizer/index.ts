export { Tokenizer, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { StreamDecoder } from './stream-decoder.js';
export { measureTokenizerThroughput, type TokenizerThroughput } from './bench.js';
export {
  parseSentencePieceModel,
  PieceType,
  ModelType,
  type SentencePieceModel,
  type SentencePiece,
  type TrainerSpec,
  type NormalizerSpec,
} from './sentencepiece-model.js';
