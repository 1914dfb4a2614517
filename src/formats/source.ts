// One entry point for every model format: an HF folder (config.json + safetensors), an MLX folder
// (mlx-lm's or CoreNet's converter's layout), a GGUF file, or a CoreNet `.pt` checkpoint (which
// needs its config: a CoreNet YAML or an HF config.json). Each opens as a config plus a
// TensorReader under HF names, so loading and converting do not care where the weights came from.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { openCheckpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import type { TensorReader } from '../io/tensor-source.js';
import { resolveConfig, type OpenELMConfig } from '../model/config.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { loadTokenizer } from '../io/tokenizer-file.js';
import { GGUFModel } from './gguf-model.js';
import { MlxModel, detectMlxFolder } from './mlx.js';
import { openCorenetCheckpoint, type CorenetCheckpoint } from './corenet.js';
import { QuantizedModel, quantLayoutOf, withoutQuantEntry, type QuantLayout } from './openelm-quant.js';

export type ModelFormat = 'hf' | 'mlx-lm' | 'corenet-mlx' | 'gguf' | 'corenet';

export interface ModelSource {
  format: ModelFormat;
  config: OpenELMConfig;
  reader: TensorReader;
  /** The file's own tokenizer (GGUF). */
  tokenizer?: () => Tokenizer;
  /** Set for CoreNet checkpoints (training states carry the optimizer). */
  corenet?: CorenetCheckpoint;
  close(): void;
}

const isFile = (p: string) => { try { return fs.statSync(p).isFile(); } catch { return false; } };

/** Whether `location` is a GGUF file. */
export const isGGUFFile = (location: string): boolean => isFile(location) && detectFormat(location) === 'gguf';

/** Which format `location` holds (by its contents, not only its name). */
export function detectFormat(location: string): ModelFormat {
  let st: fs.Stats;
  try { st = fs.statSync(location); } catch { throw new OpenELMError('model', `model folder ${location} does not exist`); }
  if (st.isDirectory()) return detectMlxFolder(location) ?? 'hf';
  const head = Buffer.alloc(4);
  const fd = fs.openSync(location, 'r');
  try { fs.readSync(fd, head, 0, 4, 0); } finally { fs.closeSync(fd); }
  if (head.toString('latin1') === 'GGUF') return 'gguf';
  if (head.readUInt32LE(0) === 0x04034b50) return 'corenet';
  if (/\.(pt|pth|bin)$/i.test(location)) return 'corenet';
  if (/\.gguf$/i.test(location)) return 'gguf';
  throw new OpenELMError('model', `${location} is not a model folder, a GGUF file or a PyTorch checkpoint`);
}

/** config.json of an HF folder, resolved; errors name the file. */
export function readHFConfig(dir: string): OpenELMConfig { return readHFConfigJson(dir).config; }

/** An HF folder's config.json as parsed (`raw`, for the layout entry of a pre-quantized folder) and resolved. */
function readHFConfigJson(dir: string): { config: OpenELMConfig; raw: unknown } {
  if (!fs.existsSync(dir)) throw new OpenELMError('model', `model folder ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory()) throw new OpenELMError('model', `${dir} is not a folder (expected config.json + model.safetensors)`);
  const cfgPath = path.join(dir, 'config.json');
  if (!isFile(cfgPath)) throw new OpenELMError('config', `${cfgPath} not found: a model folder needs config.json`);
  try {
    const raw = readJsonFile(cfgPath, 'model config');
    // a pre-quantized folder's layout entry says how the weights are stored, not what the model is
    return { config: resolveConfig(withoutQuantEntry(raw)), raw };
  } catch (e) {
    if (e instanceof OpenELMError && !e.message.includes(cfgPath)) throw new OpenELMError(e.code, `${cfgPath}: ${e.message}`);
    throw e;
  }
}

export interface OpenSourceOptions {
  /** For a CoreNet .pt: its CoreNet YAML or an HF config.json. */
  config?: string;
  /** Formats the caller can use; others are refused naming the format. */
  allow?: ModelFormat[];
  /** GGUF: decode the vocabulary with the header, for a caller that wants tokenizer() too (one read of the header, not two). Default false. */
  vocabulary?: boolean;
}

const FORMAT_NAMES: Record<ModelFormat, string> = {
  hf: 'an HF model folder', 'mlx-lm': 'an MLX folder', 'corenet-mlx': 'a CoreNet MLX folder', gguf: 'a GGUF file', corenet: 'a PyTorch/CoreNet checkpoint',
};

export function openModelSource(location: string, opts: OpenSourceOptions = {}): ModelSource {
  const format = detectFormat(location);
  if (opts.allow && !opts.allow.includes(format)) {
    throw new OpenELMError('model', `${location} is ${FORMAT_NAMES[format]}; convert it first (openelm convert --model ${location} --to hf --out DIR)`);
  }
  switch (format) {
    case 'hf': {
      const { config, raw } = readHFConfigJson(location);
      const layout = quantLayoutOf(raw, path.join(location, 'config.json'));
      const ck = openCheckpoint(location);
      let reader: TensorReader = ck;
      if (layout) {
        try { reader = new QuantizedModel(ck, config, layout); } catch (e) { ck.close(); throw e; }
      }
      return { format, config, reader, close: () => reader.close() };
    }
    case 'mlx-lm':
    case 'corenet-mlx': {
      const m = MlxModel.open(location);
      return { format, config: m.config, reader: m, close: () => m.close() };
    }
    case 'gguf': {
      // without `vocabulary`, tokenizer() reads the vocabulary, for callers that want it
      // (packed: the tokenizer's arrays as flat arrays, not a string per token; only tokenizer() reads them)
      const m = GGUFModel.open(location, { vocabulary: opts.vocabulary ? 'packed' : false });
      return { format, config: m.config, reader: m, tokenizer: () => m.tokenizer(), close: () => m.close() };
    }
    case 'corenet': {
      if (!opts.config) throw new OpenELMError('usage', `${location} is a PyTorch checkpoint: pass --config with its CoreNet YAML (or an HF config.json)`);
      const ck = openCorenetCheckpoint(location, opts.config);
      return { format, config: ck.config, reader: ck.source, corenet: ck, close: () => ck.source.close() };
    }
  }
}

/** The q8/q4 layout an HF folder's config.json declares (a pre-quantized folder), or null. */
export function hfQuantLayout(dir: string): QuantLayout | null {
  const cfgPath = path.join(dir, 'config.json');
  return quantLayoutOf(readJsonFile(cfgPath, 'model config'), cfgPath);
}

/** The resolved config of a model location without reading weights (HF and MLX folders, GGUF files). */
export function readSourceConfig(location: string): OpenELMConfig {
  if (fs.existsSync(location) && fs.statSync(location).isDirectory() && detectMlxFolder(location)) {
    const m = MlxModel.open(location);
    m.close();
    return m.config;
  }
  if (isFile(location) && detectFormat(location) === 'gguf') {
    const m = GGUFModel.open(location, { vocabulary: false });
    m.close();
    return m.config;
  }
  return readHFConfig(location);
}

/** The tokenizer a model location carries: a GGUF's own vocabulary, else the folder's tokenizer.model or the bundled one. */
export function modelTokenizer(location: string): Tokenizer {
  if (isGGUFFile(location)) {
    const m = GGUFModel.open(location, { vocabulary: 'packed' });
    m.close();
    return m.tokenizer();
  }
  return loadTokenizer(location);
}
