// adapter_config.json as Hugging Face PEFT (0.21) writes it for LoRA and DoRA, read strictly:
// every option we implement is honoured, every other option must hold PEFT's default value (or be
// a purely informational field), and anything else is refused with one line naming the option —
// never silently ignored, because an ignored option would make the adapter compute something else.

import { OpenELMError } from '../core/errors.js';
import type { OpenELMConfig } from '../model/config.js';
import { checkSettings, type AdapterSettings } from './adapter.js';
import { allAdaptableModules, allModuleNames, isAdapterTarget, ADAPTER_TARGETS, type AdaptedModule, type AdapterTarget } from './targets.js';

/** A parsed adapter_config.json: the settings plus which modules it wraps on this model. */
export interface PeftConfig {
  settings: AdapterSettings;
  /** The wrapped modules, in allAdaptableModules order. */
  modules: AdaptedModule[];
  baseModel: string | null;
  taskType: string | null;
}

type Json = Record<string, unknown>;

/** Every tensor key of a PEFT adapter file starts with this (PeftModel wraps the model as base_model.model). */
export const PEFT_PREFIX = 'base_model.model.';

/** The file keys of one module's tensors. */
export function peftTensorNames(m: AdaptedModule, dora: boolean): { A: string; B: string; magnitude?: string } {
  const p = PEFT_PREFIX + m.name;
  const names = m.kind === 'embedding'
    ? { A: `${p}.lora_embedding_A`, B: `${p}.lora_embedding_B` }
    : { A: `${p}.lora_A.weight`, B: `${p}.lora_B.weight` };
  return dora ? { ...names, magnitude: `${p}.lora_magnitude_vector` } : names;
}


/** Fields that only describe the file or the run and do not change what the adapter computes. */
const INFORMATIONAL = new Set([
  'task_type', 'peft_version', 'base_model_name_or_path', 'revision', 'inference_mode', 'auto_mapping',
  // Only read together with options that must be off (megatron_config, use_qalora).
  'megatron_core', 'qalora_group_size',
]);

/** Options we do not implement, with PEFT's default (what they must equal). `[]`/`""` count as unset where PEFT treats them so. */
const MUST_BE_DEFAULT: Record<string, unknown[]> = {
  bias: ['none'],
  fan_in_fan_out: [false],
  modules_to_save: [null, []],
  exclude_modules: [null, [], ''],
  layers_to_transform: [null, []],
  layers_pattern: [null, [], ''],
  rank_pattern: [{}, null],
  alpha_pattern: [{}, null],
  megatron_config: [null],
  loftq_config: [{}, null],
  eva_config: [null],
  corda_config: [null],
  lora_ga_config: [null],
  velora_config: [null],
  monteclora_config: [null],
  kasa_config: [null],
  arrow_config: [null],
  alora_invocation_tokens: [null],
  trainable_token_indices: [null],
  layer_replication: [null],
  target_parameters: [null, []],
  use_qalora: [false],
  use_bdlora: [null, false],
  lora_bias: [false],
  ensure_weight_tying: [false],
};

/** init_lora_weights values that only choose how A and B start (never touch the base weights). */
const INIT_VALUES: unknown[] = [true, false, 'gaussian'];

const IMPLEMENTED = new Set(['peft_type', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'use_dora', 'use_rslora', 'init_lora_weights']);

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isUnset(v: unknown): boolean {
  return v === null || v === false || v === '' || (Array.isArray(v) && v.length === 0) ||
    (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
}

/**
 * Validate a parsed adapter_config.json against model `c`. `file` names the file in errors.
 * PEFT's matching of target_modules: a list entry matches a module whose name equals it or ends
 * with "." + entry; a string is a regular expression that must match the whole module name.
 */
export function parsePeftConfig(raw: unknown, c: OpenELMConfig, file: string): PeftConfig {
  const bad = (m: string): never => { throw new OpenELMError('adapter', `${file}: ${m}`); };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('must hold a JSON object');
  const j = raw as Json;
  if (j.peft_type !== 'LORA') bad(`peft_type ${JSON.stringify(j.peft_type)} is not supported (only LORA, with or without use_dora)`);
  for (const [k, v] of Object.entries(j)) {
    if (IMPLEMENTED.has(k) || INFORMATIONAL.has(k)) continue;
    const allowed = MUST_BE_DEFAULT[k];
    if (allowed) {
      if (!allowed.some((a) => sameJson(a, v))) bad(`${k} = ${JSON.stringify(v)} is not supported (only PEFT's default ${JSON.stringify(allowed[0])})`);
    } else if (!isUnset(v)) {
      bad(`unknown option ${k} = ${JSON.stringify(v)} (not a PEFT 0.21 LoRA option this reader knows; only unset values are accepted)`);
    }
  }
  const r = j.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) bad(`r must be an integer >= 1, got ${JSON.stringify(r)}`);
  const alpha = j.lora_alpha ?? 8;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) bad(`lora_alpha must be a number > 0, got ${JSON.stringify(alpha)}`);
  const dropout = j.lora_dropout ?? 0;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) bad(`lora_dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  for (const k of ['use_dora', 'use_rslora'] as const) {
    if (j[k] !== undefined && j[k] !== null && typeof j[k] !== 'boolean') bad(`${k} must be true or false, got ${JSON.stringify(j[k])}`);
  }
  const init = j.init_lora_weights ?? true;
  if (!INIT_VALUES.some((a) => sameJson(a, init))) {
    bad(`init_lora_weights = ${JSON.stringify(init)} is not supported (true, false or "gaussian"; initialisations such as PiSSA, OLoRA, CorDA or LoftQ change the base weights)`);
  }
  const modules = matchTargets(j.target_modules, c, bad);
  const targets = ADAPTER_TARGETS.filter((t) => modules.some((m) => m.target === t));
  const settings: AdapterSettings = {
    type: j.use_dora === true ? 'dora' : 'lora', r: r as number, alpha: alpha as number, dropout: dropout as number,
    targets, rslora: j.use_rslora === true,
  };
  checkSettings(settings, file);
  const baseModel = typeof j.base_model_name_or_path === 'string' ? j.base_model_name_or_path : null;
  const taskType = typeof j.task_type === 'string' ? j.task_type : null;
  return { settings, modules, baseModel, taskType };
}

function matchTargets(tm: unknown, c: OpenELMConfig, bad: (m: string) => never): AdaptedModule[] {
  const adaptable = allAdaptableModules(c);
  const names = allModuleNames(c);
  const supported = ADAPTER_TARGETS.join(', ');
  let hit: (name: string) => boolean;
  if (typeof tm === 'string') {
    let re: RegExp;
    try { re = new RegExp(`^(?:${tm})$`); } catch (e) { return bad(`target_modules ${JSON.stringify(tm)} is not a regular expression this reader understands (${(e as Error).message})`); }
    hit = (n) => re.test(n);
    const wrong = names.filter((n) => hit(n) && !adaptable.some((m) => m.name === n));
    if (wrong.length) bad(`target_modules ${JSON.stringify(tm)} matches ${wrong[0]}, which adapters cannot wrap (supported: ${supported})`);
  } else if (Array.isArray(tm) && tm.length && tm.every((t) => typeof t === 'string')) {
    const list = tm as string[];
    const matches = (n: string, t: string) => n === t || n.endsWith(`.${t}`);
    for (const t of list) {
      const found = names.filter((n) => matches(n, t));
      if (!found.length) bad(`target module ${JSON.stringify(t)} does not exist in OpenELM (adapters can wrap ${supported})`);
      const wrong = found.find((n) => !adaptable.some((m) => m.name === n));
      if (wrong) bad(`target module ${JSON.stringify(t)} (${wrong}) cannot be adapted (supported: ${supported})`);
    }
    hit = (n) => list.some((t) => matches(n, t));
  } else {
    return bad(`target_modules must be a list of module names or a regular expression, got ${JSON.stringify(tm)}`);
  }
  const out = adaptable.filter((m) => hit(m.name));
  if (!out.length) bad(`target_modules ${JSON.stringify(tm)} matches no module of this model (adapters can wrap ${supported})`);
  // Our adapters wrap every module of a kind or none (PEFT's list form); a regex that picks some
  // layers only would need per-module bookkeeping we do not have.
  for (const t of ADAPTER_TARGETS) {
    const all = adaptable.filter((m) => m.target === t), got = out.filter((m) => m.target === t);
    if (got.length && got.length !== all.length) bad(`target_modules ${JSON.stringify(tm)} wraps ${got.length} of the ${all.length} ${t} modules; only all or none are supported`);
  }
  return out;
}

/**
 * The adapter_config.json we write: PEFT 0.21's LoRA fields at PEFT's defaults except ours, keys
 * sorted as PEFT writes them, so PEFT loads it with `PeftModel.from_pretrained(model, dir)`.
 */
export function peftConfigJson(s: AdapterSettings, baseModel: string | null = null): Json {
  const cfg: Json = {
    alora_invocation_tokens: null, alpha_pattern: {}, arrow_config: null, auto_mapping: null,
    base_model_name_or_path: baseModel, bias: 'none', corda_config: null, ensure_weight_tying: false, eva_config: null,
    exclude_modules: null, fan_in_fan_out: false, inference_mode: true, init_lora_weights: true, kasa_config: null,
    layer_replication: null, layers_pattern: null, layers_to_transform: null, loftq_config: {}, lora_alpha: s.alpha,
    lora_bias: false, lora_dropout: s.dropout, lora_ga_config: null, megatron_config: null, megatron_core: 'megatron.core',
    modules_to_save: null, monteclora_config: null, peft_type: 'LORA', peft_version: '0.21.0', qalora_group_size: 16, r: s.r,
    rank_pattern: {}, revision: null, target_modules: [...s.targets], target_parameters: null, task_type: 'CAUSAL_LM',
    trainable_token_indices: null, use_bdlora: null, use_dora: s.type === 'dora', use_qalora: false, use_rslora: s.rslora,
    velora_config: null,
  };
  return Object.fromEntries(Object.entries(cfg).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function targetsFromStrings(list: readonly string[], where: string): AdapterTarget[] {
  const out: AdapterTarget[] = [];
  for (const t of list) {
    if (!isAdapterTarget(t)) throw new OpenELMError('adapter', `${where}: ${JSON.stringify(t)} is not an adapter target (${ADAPTER_TARGETS.join(', ')})`);
    if (out.includes(t)) throw new OpenELMError('adapter', `${where}: ${t} is listed twice`);
    out.push(t);
  }
  return out;
}
