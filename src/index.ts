// Public entry point of the `openelm` package.

// Node.js: threads, the native GEMM and file access come from the Node platform.
import './platform/node.js';

// The high-level API: load (folder or hub id), generate, stream, chat.
export { loadModel, LoadedModel, type LoadModelOptions, type TextGenerateOptions } from './api.js';

// Chat: templates, multi-turn sessions with KV-cache reuse.
export {
  CORENET_INSTRUCT_TEMPLATE, corenetInstructTemplate, jinjaTemplate, templateFromTokenizerConfigObject,
  type ChatMessage, type ChatRole, type ChatTemplate, type RenderOptions, type JinjaTemplateOptions,
} from './chat/template.js';
export { resolveChatTemplate, templateFromTokenizerConfig, type ResolveTemplateOptions } from './io/chat-template-file.js';
export { encodeChatText, type ChatEncodeOptions } from './chat/tokenize.js';
export { ChatSession, type ChatSessionOptions, type ChatTurnOptions, type ChatTurnResult } from './chat/session.js';
export { TextStream } from './chat/text-stream.js';

// Hugging Face hub.
export { ensureModel, cachedModel, hubCacheDir, type EnsureModelOptions, type DownloadProgress } from './hub/index.js';

// OpenAI-compatible HTTP server.
export { createServer, type ServerOptions, type OpenELMServer } from './serve/server.js';

// Lower level: config, model, tokenizer, generation.
export {
  resolveConfig, presetHFConfig, parameterCount, PRESET_NAMES,
  type OpenELMConfig, type OpenELMHFConfig,
} from './model/config.js';
export { isInstructName, generationDefaults } from './model/family.js';
export { OpenELM, type ForwardItem } from './model/openelm.js';
export { KVCache } from './model/kv-cache.js';
export { modelFromSource, type LoadDType, type TensorSource } from './model/load.js';
export { loadModelFolder, readModelConfig } from './io/model-folder.js';
export { TrainableModel, type LossResult, type ForwardBackwardOptions, type AdapterTraining } from './model/trainable.js';

// Adapters (LoRA / DoRA): PEFT folders, merging, the mlx-lm export, the trainable model's layout.
export { type Adapter, type AdapterSettings, type AdapterType, type ModuleAdapter, adapterScale, initAdapter } from './adapters/adapter.js';
export { ADAPTER_TARGETS, type AdapterTarget } from './adapters/targets.js';
export { mergeAdapter, mergedSource } from './adapters/merge.js';
export { adapterToFlat, flatToAdapter } from './adapters/params.js';
export { readPeftAdapter, writePeftAdapter } from './io/peft-folder.js';
export { writeMlxAdapter } from './io/mlx-adapter.js';
export { Tokenizer, StreamDecoder, type EncodeOptions, type DecodeOptions } from './tokenizer/index.js';
export { loadTokenizer, tokenizerFromFile, bundledTokenizerPath } from './io/tokenizer-file.js';
export {
  generate, generateStream, generateBatch, generateMany,
  type GenerateOptions, type GenerationResult, type StreamChunk, type Timings, type FinishReason,
} from './generate/generate.js';
export { Sampler, type SamplingOptions } from './generate/sampler.js';
// Structured output (GBNF grammars, JSON schemas, exact token masks) and log-probabilities.
export {
  compileGbnf, compileJsonSchema, compileJsonObject, jsonSchemaToGbnf, jsonObjectGbnf, validateJson,
  CompiledGrammar, GrammarMasker, GrammarMatcher, GrammarError, SchemaError, tokenizerVocab, type TokenVocab,
  GrammarCache, type ConstraintSpec,
} from './generate/constrain/index.js';
export { logSumExp, tokenLogprob, topLogprobs, promptLogprobs, type TokenLogprob, type TopLogprob, type PromptLogprobs } from './generate/logprobs.js';
export type { Backend, Tensor, Weight, WeightDType } from './backends/backend.js';
export { createBackend, registerBackend, backendNames, JsBackend, WasmBackend, type BackendOptions, type BackendProvider } from './backends/index.js';
export { SequenceDecoder, type TokenConstraint, type DecodeOptions as StepOptions } from './generate/decode.js';
export { OpenELMError } from './core/errors.js';
