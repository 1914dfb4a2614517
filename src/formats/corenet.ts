// CoreNet (apple/corenet, the PyTorch library Apple trained OpenELM with) checkpoints and configs.
//
// - Names: CoreNet's GeneralGPTModel names are the HF names without `transformer.`; its embedding
//   has the YAML's vocab_size rows (32128 for the released sizes: 32000 tokens, the padding token
//   32000, and rows that only round the size up). HF keeps the first 32000.
// - A checkpoint is `torch.save` of the state dict (weights only), or of a training state
//   {iterations, epoch, model_state_dict, optim_state_dict, best_metric, is_interval_ckpt, ...}
//   (corenet/utils/checkpoint_utils.py get_training_state).
// - The optimizer is torch's AdamW with two parameter groups: tensors of rank ≠ 1 with weight
//   decay, then the 1-D ones without, each listing `param_names` (corenet/modeling/misc/common.py
//   parameter_list); the state is keyed by index in that order.
// - Averaging (`average_ckpts`): per key, float64 sum over the files that have it, divided by
//   their count, cast back to the first file's dtype.
// See docs/formats.md.

import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { readJsonFile } from '../io/json.js';
import { DecodedTensorSource, numelOf, type SourceTensorInfo, type TensorReader } from '../io/tensor-source.js';
import {
  TorchFile, TorchTensorRef, asStateDict, pyGet, saveTorchFile, PyTuple, PyFloat,
  type PyValue, type SaveValue, type TensorToSave, type WritableDType,
} from '../io/torch-file.js';
import { paramSpecs, resolveConfig, presetHFConfig, type OpenELMConfig, type OpenELMHFConfig } from '../model/config.js';

/** CoreNet's gpt_configs (corenet/modeling/models/language_modeling/general_gpt.py) that are OpenELMs. */
const CORENET_MODELS: Record<string, () => OpenELMHFConfig> = {
  'OpenELM-270M': () => presetHFConfig('OpenELM-270M'),
  'OpenELM-450M': () => presetHFConfig('OpenELM-450M'),
  'OpenELM-1_1B': () => presetHFConfig('OpenELM-1_1B'),
  'OpenELM-3B': () => presetHFConfig('OpenELM-3B'),
  // CoreNet's smallest test model, useful for trying a conversion end to end.
  'gpt-test': () => ({
    ...presetHFConfig('OpenELM-270M'),
    num_transformer_layers: 1, model_dim: 128, head_dim: 64, num_gqa_groups: 1,
    qkv_multipliers: [0.25, 0.5], ffn_multipliers: [0.25, 0.75], ffn_dim_divisor: 256,
  }),
};
export const CORENET_MODEL_NAMES = Object.keys(CORENET_MODELS);

/** The HF (transformer.-prefixed) name of a CoreNet tensor name. */
export const hfName = (corenet: string): string => (corenet.startsWith('transformer.') || corenet === 'lm_head.weight' ? corenet : `transformer.${corenet}`);
/** CoreNet's name of an HF tensor name. */
export const corenetName = (hf: string): string => (hf.startsWith('transformer.') ? hf.slice('transformer.'.length) : hf);
const EMBEDDING = 'transformer.token_embeddings.weight';

/** CoreNet's parameter order (module definition order of GeneralGPTModel), in HF names. */
export function corenetOrder(c: OpenELMConfig): string[] {
  const out = [EMBEDDING];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.layers.${i}.`;
    out.push(p + 'attn.qkv_proj.weight');
    if (c.normalizeQk) out.push(p + 'attn.q_norm.weight', p + 'attn.k_norm.weight');
    out.push(p + 'attn.out_proj.weight', p + 'ffn.proj_1.weight', p + 'ffn.proj_2.weight', p + 'ffn_norm.weight', p + 'attn_norm.weight');
  }
  out.push('transformer.norm.weight');
  if (!c.tiedEmbeddings) out.push('lm_head.weight');
  return out;
}

export interface CorenetModelConfig {
  /** The model as HF describes it (vocab_size = the real vocabulary). */
  hf: OpenELMHFConfig;
  /** Rows of CoreNet's embedding (the YAML's vocab_size), when known. */
  corenetVocab?: number;
  /** The YAML's model_name, when the config came from a CoreNet YAML. */
  modelName?: string;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

// The YAML parser is loaded on first use: every command that opens a model imports this module
// (formats/source.ts), and loading `yaml` up front costs each of them ~1.2 MiB of resident memory
// for the CoreNet YAMLs few of them read.
let yaml: typeof import('yaml') | undefined;
type YamlOptions = import('yaml').ParseOptions & import('yaml').DocumentOptions & import('yaml').SchemaOptions & import('yaml').ToJSOptions;
function parseYaml(text: string, opts: YamlOptions): unknown {
  yaml ??= createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return yaml.parse(text, opts);
}

export function readYamlFile(file: string, what: string): unknown {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    throw new OpenELMError('config', `cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message}`);
  }
  try { return parseYaml(text, { merge: true, maxAliasCount: 1000 }); } catch (e) {
    throw new OpenELMError('config', `${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The model a CoreNet training YAML describes (model.language_modeling.general_gpt). */
export function corenetModelFromYaml(doc: unknown, file: string): CorenetModelConfig {
  const key = 'model.language_modeling.general_gpt';
  const gpt = [isObj(doc) ? doc.model : undefined].map((m) => (isObj(m) ? m.language_modeling : undefined)).map((l) => (isObj(l) ? l.general_gpt : undefined))[0];
  if (!isObj(gpt)) throw new OpenELMError('config', `${file}: ${key} is missing (not a CoreNet language-model YAML)`);
  const name = gpt.model_name;
  if (typeof name !== 'string') throw new OpenELMError('config', `${file}: ${key}.model_name is missing`);
  const make = CORENET_MODELS[name];
  if (!make) throw new OpenELMError('config', `${file}: ${key}.model_name "${name}" is not a known size (${CORENET_MODEL_NAMES.join(', ')})`);
  const num = (k: string): number | undefined => {
    const v = gpt[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new OpenELMError('config', `${file}: ${key}.${k} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const rows = num('vocab_size'), pad = num('padding_index'), ctx = num('max_context_length');
  const hf = make();
  // CoreNet appends the padding token after the real vocabulary (32000 tokens, padding 32000).
  if (rows !== undefined) hf.vocab_size = pad !== undefined && pad < rows ? pad : Math.min(rows, 32000);
  if (ctx !== undefined) hf.max_context_length = ctx;
  return { hf: resolveConfig(hf).hf, corenetVocab: rows, modelName: name };
}

/** `--config`: a CoreNet YAML (model_name names the size) or an HF config.json. */
export function readModelConfigFile(file: string): CorenetModelConfig {
  if (/\.ya?ml$/i.test(file)) return corenetModelFromYaml(readYamlFile(file, 'CoreNet config'), file);
  const raw = readJsonFile(file, 'model config');
  try {
    return { hf: resolveConfig(raw).hf };
  } catch (e) {
    if (e instanceof OpenELMError) throw new OpenELMError(e.code, `${file}: ${e.message}`);
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------
// Reading

/** Tensors of a state dict under HF names; the embedding (and head) keep their first `vocab` rows. */
class StateDictSource extends DecodedTensorSource {
  readonly location: string;
  private readonly refs = new Map<string, { ref: TorchTensorRef; rows?: number }>();

  constructor(private readonly file: TorchFile, sd: Map<string, TorchTensorRef>, c: OpenELMConfig, where: string) {
    super();
    this.location = where;
    const specs = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
    for (const [k, ref] of sd) {
      const name = hfName(k);
      const want = specs.get(name);
      if (!want) throw new OpenELMError('checkpoint', `${where}: tensor ${k} is not part of this model (${c.numLayers} layers)`);
      if (!['F32', 'BF16', 'F16', 'F64'].includes(ref.storage.dtype)) throw new OpenELMError('checkpoint', `${where}: tensor ${k} has dtype ${ref.storage.dtype}; weights must be floating point`);
      const big = name === EMBEDDING || name === 'lm_head.weight';
      const ok = ref.shape.length === want.length && ref.shape.every((d, i) => (i === 0 && big ? d >= want[0] : d === want[i]));
      if (!ok) throw new OpenELMError('checkpoint', `${where}: tensor ${k} has shape [${ref.shape}], expected [${want}]${big ? ' (at least that many rows)' : ''}`);
      this.refs.set(name, { ref, rows: big ? want[0] : undefined });
    }
    for (const n of specs.keys()) if (!this.refs.has(n)) throw new OpenELMError('checkpoint', `${where}: tensor ${corenetName(n)} is missing`);
  }

  names(): string[] { return [...this.refs.keys()]; }
  override has(name: string): boolean { return this.refs.has(name); }

  protected infoOf(name: string): SourceTensorInfo {
    const { ref, rows } = this.refs.get(name)!;
    return { name, dtype: ref.storage.dtype, shape: rows !== undefined ? [rows, ...ref.shape.slice(1)] : ref.shape };
  }

  /** The tensor as stored, all rows (the embedding keeps CoreNet's padding rows). */
  stored(name: string): TorchTensorRef {
    this.info(name);
    return this.refs.get(name)!.ref;
  }

  protected decode(name: string, dst: Float32Array): void {
    const { ref } = this.refs.get(name)!;
    const all = this.file.readF32(ref);
    dst.set(all.subarray(0, dst.length));
  }

  /** Rows are flat in the stored tensor from element 0, whatever rows follow the vocabulary. */
  protected override decodeRange(name: string, start: number, count: number, dst: Float32Array): boolean {
    this.file.readF32Range(this.refs.get(name)!.ref, start, count, dst);
    return true;
  }

  protected override raw16(name: string, dst: Uint16Array): void {
    const { ref } = this.refs.get(name)!;
    const b = this.file.readBytes(ref);
    dst.set(new Uint16Array(b.buffer, b.byteOffset, dst.length));
  }

  override close(): void { this.file.close(); }
}

export interface AdamWMoments {
  /** Completed optimizer steps (torch's per-parameter `step`). */
  step: number;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  /** exp_avg / exp_avg_sq per HF name, rows cut like the weights. */
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export interface CorenetTrainingState {
  iterations: number;
  epoch: number;
  optimizer?: AdamWMoments;
}

export interface CorenetCheckpoint {
  config: OpenELMConfig;
  source: TensorReader & { stored(name: string): TorchTensorRef };
  file: TorchFile;
  /** Set when the file is a training state. */
  training?: CorenetTrainingState;
  /** Rows of the stored embedding. */
  embeddingRows: number;
}

function num(v: PyValue | undefined, what: string, where: string, file?: TorchFile): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof PyFloat) return v.value;
  if (v instanceof TorchTensorRef && file && numelOf(v.shape) === 1) return file.readF32(v)[0];
  throw new OpenELMError('checkpoint', `${where}: ${what} is not a number`);
}

/** Parameter names in the order torch numbered them in optim_state_dict. */
function optimizerNames(optim: Map<unknown, PyValue>, order: string[], shapes: Map<string, readonly number[]>, where: string): string[] {
  const groups = optim.get('param_groups');
  if (!Array.isArray(groups)) throw new OpenELMError('checkpoint', `${where}: optim_state_dict.param_groups is missing`);
  const ids: number[] = [];
  const named: string[] = [];
  for (const g of groups) {
    const params = pyGet(g, 'params');
    if (!Array.isArray(params)) throw new OpenELMError('checkpoint', `${where}: an optimizer parameter group has no params list`);
    ids.push(...params.map((p) => num(p, 'a parameter id', where)));
    const names = pyGet(g, 'param_names');
    if (Array.isArray(names) && names.length === params.length) named.push(...names.map(String));
  }
  let names: string[];
  if (named.length === ids.length) names = named.map(hfName);
  else {
    // CoreNet's grouping: decayed tensors (rank ≠ 1) in model order, then the 1-D ones.
    const decayed = order.filter((n) => shapes.get(n)!.length !== 1), flat = order.filter((n) => shapes.get(n)!.length === 1);
    names = groups.length === 1 ? order : [...decayed, ...flat];
    if (names.length !== ids.length) throw new OpenELMError('checkpoint', `${where}: the optimizer has ${ids.length} parameters, the model ${names.length}; cannot match them without param_names`);
  }
  const byId: string[] = [];
  ids.forEach((id, i) => { byId[id] = names[i]; });
  return byId;
}

function readMoments(file: TorchFile, optim: PyValue | undefined, c: OpenELMConfig, order: string[], where: string): AdamWMoments | undefined {
  if (!(optim instanceof Map)) return undefined;
  const state = optim.get('state');
  if (!(state instanceof Map) || state.size === 0) return undefined;
  const specs = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
  const byId = optimizerNames(optim as Map<unknown, PyValue>, order, specs, where);
  const groups = optim.get('param_groups') as PyValue[];
  const g0 = groups[0];
  const betas = pyGet(g0, 'betas');
  const b = betas instanceof PyTuple ? betas.items : Array.isArray(betas) ? betas : [];
  const decayed = groups.map((g) => num(pyGet(g, 'weight_decay'), 'weight_decay', where)).find((w) => w > 0) ?? 0;
  const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
  const steps = new Set<number>();
  for (const [k, s] of state) {
    const name = typeof k === 'string' ? hfName(k) : byId[num(k as PyValue, 'a state key', where)];
    const shape = name ? specs.get(name) : undefined;
    if (!name || !shape) throw new OpenELMError('checkpoint', `${where}: optimizer state ${String(k)} matches no parameter`);
    const ea = pyGet(s, 'exp_avg'), eas = pyGet(s, 'exp_avg_sq');
    if (!(ea instanceof TorchTensorRef) || !(eas instanceof TorchTensorRef)) throw new OpenELMError('checkpoint', `${where}: optimizer state of ${corenetName(name)} has no exp_avg / exp_avg_sq (not AdamW)`);
    const n = numelOf(shape);
    for (const [t, into] of [[ea, m], [eas, v]] as const) {
      if (numelOf(t.shape) < n || t.shape.slice(1).join() !== shape.slice(1).join()) throw new OpenELMError('checkpoint', `${where}: optimizer state of ${corenetName(name)} has shape [${t.shape}], expected [${shape}]`);
      into.set(name, file.readF32(t).subarray(0, n));
    }
    steps.add(num(pyGet(s, 'step'), 'step', where, file));
  }
  if (steps.size !== 1) throw new OpenELMError('checkpoint', `${where}: optimizer steps differ between parameters (${[...steps].join(', ')})`);
  for (const n of specs.keys()) if (!m.has(n)) throw new OpenELMError('checkpoint', `${where}: optimizer state of ${corenetName(n)} is missing`);
  return {
    step: [...steps][0], lr: num(pyGet(g0, 'lr'), 'lr', where),
    betas: [num(b[0], 'beta1', where), num(b[1], 'beta2', where)], eps: num(pyGet(g0, 'eps'), 'eps', where),
    weightDecay: decayed, m, v,
  };
}

/** Open a CoreNet `.pt` checkpoint (weights only or a training state) as an HF-named model. */
export function openCorenetCheckpoint(ptFile: string, configFile: string): CorenetCheckpoint {
  const mc = readModelConfigFile(configFile);
  const config = resolveConfig(mc.hf);
  const file = TorchFile.open(ptFile);
  try {
    const root = file.root;
    const training = pyGet(root, 'model_state_dict') !== undefined;
    const sd = asStateDict(training ? pyGet(root, 'model_state_dict') : root);
    if (!sd) {
      throw new OpenELMError('checkpoint', training
        ? `${ptFile}: model_state_dict is not a dict of tensors`
        : `${ptFile} is neither a state dict of tensors nor a CoreNet training state (no model_state_dict)`);
    }
    const source = new StateDictSource(file, sd, config, ptFile);
    const rows = source.stored(EMBEDDING).shape[0];
    if (mc.corenetVocab !== undefined && rows !== mc.corenetVocab) {
      throw new OpenELMError('checkpoint', `${ptFile}: the embedding has ${rows} rows but ${configFile} says vocab_size ${mc.corenetVocab}`);
    }
    const out: CorenetCheckpoint = { config, source, file, embeddingRows: rows };
    if (training) {
      const order = [...sd.keys()].map(hfName);
      out.training = {
        iterations: num(pyGet(root, 'iterations') ?? 0, 'iterations', ptFile),
        epoch: num(pyGet(root, 'epoch') ?? 0, 'epoch', ptFile),
        optimizer: readMoments(file, pyGet(root, 'optim_state_dict'), config, order, ptFile),
      };
    }
    return out;
  } catch (e) {
    file.close();
    throw e;
  }
}

// ------------------------------------------------------------------------------------------------
// Writing

export interface CorenetExportOptions {
  /** Embedding rows in the file (CoreNet's vocab_size; default 32128 when the model has 32000). */
  rows?: number;
  /** Take the rows past the model's vocabulary from this CoreNet checkpoint (default: zeros). */
  padFrom?: CorenetCheckpoint;
  /** Stored dtype (default: each tensor's own, F32 for other types). */
  dtype?: WritableDType;
}

const storedDType = (d: string): WritableDType => (d === 'BF16' || d === 'F16' || d === 'F64' ? d : 'F32');

/** Write `src` (HF names) as a CoreNet weights-only checkpoint. Returns the file size. */
export function writeCorenetCheckpoint(src: TensorReader, c: OpenELMConfig, out: string, opts: CorenetExportOptions = {}): number {
  const rows = opts.rows ?? (c.vocabSize === 32000 ? 32128 : c.vocabSize);
  if (rows < c.vocabSize) throw new OpenELMError('usage', `the CoreNet embedding needs at least the model's ${c.vocabSize} rows, got ${rows}`);
  const pad = opts.padFrom;
  if (pad && pad.embeddingRows < rows) throw new OpenELMError('usage', `${pad.file.file} has ${pad.embeddingRows} embedding rows; ${rows} are needed to pad from it`);
  const sd = new Map<string, SaveValue>();
  for (const name of corenetOrder(c)) {
    const info = src.info(name);
    const dtype = opts.dtype ?? storedDType(info.dtype);
    const big = (name === EMBEDDING || name === 'lm_head.weight') && rows > c.vocabSize;
    const shape = big ? [rows, c.modelDim] : [...info.shape];
    const data = (): Float32Array | Uint16Array => {
      const n = numelOf(info.shape);
      const sixteen = (dtype === 'BF16' || dtype === 'F16') && info.dtype === dtype;
      if (!big) return sixteen ? (dtype === 'BF16' ? src.readBF16(name) : src.readF16(name)) : src.readF32(name);
      const all = new Float32Array(numelOf(shape));
      src.readF32(name, all, 0);
      if (pad) {
        const p = pad.file.readF32(pad.source.stored(name));
        all.set(p.subarray(n, numelOf(shape)), n);
      }
      return all;
    };
    sd.set(corenetName(name), { tensor: { dtype, shape, data } as TensorToSave });
  }
  return saveTorchFile(out, sd);
}

// ------------------------------------------------------------------------------------------------
// Averaging

/** CoreNet's average_ckpts over state dicts (weights-only files, or training states' model_state_dict). */
export function averageCheckpoints(files: string[], out: string): { tensors: number; bytes: number } {
  if (files.length === 0) throw new OpenELMError('usage', 'average needs at least one checkpoint');
  const resolvedOut = path.resolve(out);
  for (const f of files) if (path.resolve(f) === resolvedOut) throw new OpenELMError('usage', `--out ${out} is one of the inputs`);
  const sums = new Map<string, { sum: Float64Array; count: number; dtype: WritableDType; shape: number[] }>();
  for (const f of files) {
    const tf = TorchFile.open(f);
    try {
      const root = tf.root;
      const sd = asStateDict(pyGet(root, 'model_state_dict') ?? root);
      if (!sd) throw new OpenELMError('checkpoint', `${f} is not a state dict of tensors`);
      for (const [k, ref] of sd) {
        const d = ref.storage.dtype;
        if (!['F32', 'BF16', 'F16', 'F64'].includes(d)) throw new OpenELMError('checkpoint', `${f}: tensor ${k} has dtype ${d}; only floating-point tensors can be averaged`);
        const v = tf.readF64(ref);
        const acc = sums.get(k);
        if (!acc) { sums.set(k, { sum: v, count: 1, dtype: d as WritableDType, shape: ref.shape.slice() }); continue; }
        if (acc.shape.join() !== ref.shape.join()) throw new OpenELMError('checkpoint', `${f}: tensor ${k} has shape [${ref.shape}], the first checkpoint [${acc.shape}]`);
        for (let i = 0; i < v.length; i++) acc.sum[i] += v[i];
        acc.count++;
      }
    } finally { tf.close(); }
  }
  const sd = new Map<string, SaveValue>();
  for (const [k, a] of sums) {
    for (let i = 0; i < a.sum.length; i++) a.sum[i] /= a.count;
    // Cast back as torch does: float64 → float32 (rounded) → the key's dtype.
    sd.set(k, { tensor: { dtype: a.dtype, shape: a.shape, data: a.dtype === 'F64' ? a.sum : Float32Array.from(a.sum) } });
  }
  return { tensors: sd.size, bytes: saveTorchFile(out, sd) };
}
