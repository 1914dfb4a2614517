// The `openelm` package in browsers (the `browser` export condition): load an OpenELM model from a
// URL, the Hugging Face hub or picked files, then generate, stream or chat, on the WASM backend
// (threads when the page is cross-origin isolated and the engine runs in a Web Worker), on WebGPU
// (navigator.gpu; `auto` picks it on a hardware adapter) or any registered backend. No Node.js
// module is reachable from here (test/browser-bundle.test.ts): Dawn, Node's way to WebGPU, is only
// reached through the Node platform (platform/node-webgpu.ts).
//
//   import { loadModel } from 'openelm';
//   const model = await loadModel('apple/OpenELM-270M-Instruct', { onProgress: (p) => console.log(p) });
//   for await (const chunk of model.chat().stream('Name three colors.')) out.textContent += chunk.text;

import './platform.js';
import './full-finetune.js';
import './lora-finetune.js';


export { loadModel, inspectModel, bundledTokenizer, singleThreadReason, type BrowserLoadOptions, type LoadProgress, type LoadPhase } from './load.js';
export { modelFiles, classifyModel, type ModelSource, type LocalFile, type ModelFiles, type ModelFilesOptions } from './model-files.js';
export { planModel, estimateMemory, type ModelPlan, type MemoryEstimate, type WeightFile } from './plan.js';
export {
  download, clearModelCache, deleteKept, listModelCache, canKeepDownloads, keptStorage, keptFile, storageEstimate, fmtBytes, MODEL_CACHE, OPFS_FOLDER,
  type FileProgress, type KeptFile, type KeptStorage,
} from './downloads.js';
export { openSafetensors, BrowserCheckpoint } from './tensor-source.js';
export {
  registerFineTuner, fineTuner, fineTuneMethods, requireFineTuner, checkFineTuneData, DEFAULT_FINETUNE,
  type FineTuner, type FineTuneJob, type FineTuneData, type FineTuneMethod, type FineTuneSettings, type FineTuneStep, type AdapterFile,
} from './finetune.js';
export { fullFineTuner } from './full-finetune.js';
export { loraFineTuner } from './lora-finetune.js';
export { trainingWindows, WindowSampler, type TrainingWindows } from './finetune-data.js';
export { keepWeightSource, weightSourceOf, type WeightSource } from './weight-files.js';
export { browserPlatform, setKernelWorkerUrl, threadsUnavailableReason } from './platform.js';

export { LoadedModel, type TextGenerateOptions } from '../loaded-model.js';
export {
  CORENET_INSTRUCT_TEMPLATE, corenetInstructTemplate, jinjaTemplate, templateFromTokenizerConfigObject,
  type ChatMessage, type ChatRole, type ChatTemplate, type RenderOptions, type JinjaTemplateOptions,
} from '../chat/template.js';
export { encodeChatText, type ChatEncodeOptions } from '../chat/tokenize.js';
export { ChatSession, type ChatSessionOptions, type ChatTurnOptions, type ChatTurnResult } from '../chat/session.js';
export { TextStream } from '../chat/text-stream.js';
export {
  resolveConfig, presetHFConfig, parameterCount, PRESET_NAMES,
  type OpenELMConfig, type OpenELMHFConfig,
} from '../model/config.js';
export { isInstructName, generationDefaults } from '../model/family.js';
export { OpenELM, type ForwardItem } from '../model/openelm.js';
export { KVCache } from '../model/kv-cache.js';
export { modelFromSource, type LoadDType, type TensorSource } from '../model/load.js';
export { TrainableModel, type LossResult, type ForwardBackwardOptions } from '../model/trainable.js';
export { Tokenizer, StreamDecoder, type EncodeOptions, type DecodeOptions } from '../tokenizer/index.js';
export {
  generate, generateStream, generateBatch, generateMany,
  type GenerateOptions, type GenerationResult, type StreamChunk, type Timings, type FinishReason,
} from '../generate/generate.js';
export { Sampler, type SamplingOptions } from '../generate/sampler.js';
export type { Backend, Tensor, Weight, WeightDType } from '../backends/backend.js';
export { createBackend, registerBackend, backendNames, JsBackend, WasmBackend, type BackendOptions, type BackendProvider } from '../backends/index.js';
export { probeAdapter as probeWebGpu, type GpuAdapterSummary } from '../backends/webgpu/device.js';
export { SequenceDecoder, type TokenConstraint, type DecodeOptions as StepOptions } from '../generate/decode.js';
export { OpenELMError } from '../core/errors.js';
