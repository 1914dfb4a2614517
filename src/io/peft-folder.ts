// A PEFT adapter folder: adapter_config.json + adapter_model.safetensors, tensor names and shapes
// exactly as PEFT's save_pretrained writes them for OpenELM (Apple's module names):
//   base_model.model.<module>.lora_A.weight        [r, in]      linears
//   base_model.model.<module>.lora_B.weight        [out, r]
//   base_model.model.transformer.token_embeddings.lora_embedding_A   [r, vocab]   (no ".weight")
//   base_model.model.transformer.token_embeddings.lora_embedding_B   [dim, r]
//   base_model.model.<module>.lora_magnitude_vector                  DoRA, [out] / [dim] (no ".weight")

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { commitAll, stageFileSync, writeAllSync, type StagedFile } from './atomic.js';
import { readJsonFile } from './json.js';
import { SafetensorsFile, stageSafetensorsSync } from './safetensors.js';
import type { OpenELMConfig } from '../model/config.js';
import type { Adapter, ModuleAdapter } from '../adapters/adapter.js';
import { PEFT_PREFIX, parsePeftConfig, peftConfigJson, peftTensorNames } from '../adapters/peft-config.js';
import { allAdaptableModules } from '../adapters/targets.js';
import { peftTensors } from './peft-files.js';

export { peftTensors, peftAdapterFiles } from './peft-files.js';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** True when `dir` looks like a PEFT adapter folder. */
export function isPeftAdapterDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, PEFT_CONFIG_FILE));
}

/** Read and check a PEFT adapter folder against model `c`; every problem is one line naming the file and tensor. */
export function readPeftAdapter(dir: string, c: OpenELMConfig): Adapter {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new OpenELMError('adapter', `adapter folder ${dir} does not exist`);
  const cfgFile = path.join(dir, PEFT_CONFIG_FILE);
  if (!fs.existsSync(cfgFile)) throw new OpenELMError('adapter', `${dir} is not a PEFT adapter folder (no ${PEFT_CONFIG_FILE})`);
  const pc = parsePeftConfig(readJsonFile(cfgFile, 'adapter config'), c, cfgFile);
  const wFile = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!fs.existsSync(wFile)) {
    if (fs.existsSync(path.join(dir, 'adapter_model.bin'))) {
      throw new OpenELMError('adapter', `${dir} holds adapter_model.bin (a PyTorch pickle), which is not read; re-save it with PEFT's save_pretrained(safe_serialization=True)`);
    }
    throw new OpenELMError('adapter', `${dir} has no ${PEFT_WEIGHTS_FILE}`);
  }
  const f = SafetensorsFile.open(wFile);
  try {
    const dora = pc.settings.type === 'dora', r = pc.settings.r;
    const expected = new Set<string>();
    const modules: ModuleAdapter[] = [];
    for (const m of pc.modules) {
      const names = peftTensorNames(m, dora);
      const read = (name: string, shape: number[], rankAxis = -1): Float32Array => {
        expected.add(name);
        if (!f.has(name)) throw new OpenELMError('adapter', `${wFile} has no tensor ${name} (adapter_config.json targets ${m.name})`);
        const got = f.info(name).shape;
        if (!sameShape(got, shape)) {
          const rankOnly = got.length === shape.length && got.every((g, i) => g === shape[i] || i === rankAxis);
          const why = rankOnly ? `adapter_config.json says r = ${r}` : 'an adapter for another base model or size?';
          throw new OpenELMError('adapter', `${wFile}: ${name} is ${fmt(got)}, but this model needs ${fmt(shape)} (${why})`);
        }
        try { return f.readF32(name); } catch (e) {
          throw new OpenELMError('adapter', `${wFile}: cannot read ${name} as floats: ${(e as Error).message}`);
        }
      };
      const ma: ModuleAdapter = { module: m, A: read(names.A, [r, m.inFeatures], 0), B: read(names.B, [m.outFeatures, r], 1) };
      if (names.magnitude) ma.magnitude = read(names.magnitude, [m.outFeatures]);
      modules.push(ma);
    }
    for (const name of f.names()) {
      if (expected.has(name)) continue;
      throw new OpenELMError('adapter', `${wFile}: unexpected tensor ${name} (${explainUnexpected(name, c, dora)})`);
    }
    return { settings: pc.settings, modules, baseModel: pc.baseModel };
  } finally {
    f.close();
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function explainUnexpected(name: string, c: OpenELMConfig, dora: boolean): string {
  if (!name.startsWith(PEFT_PREFIX)) return `PEFT keys start with ${PEFT_PREFIX}`;
  const rest = name.slice(PEFT_PREFIX.length);
  const layer = /^transformer\.layers\.(\d+)\./.exec(rest);
  if (layer && Number(layer[1]) >= c.numLayers) return `the model has ${c.numLayers} layers: an adapter for another base size?`;
  if (/\.base_layer\.weight$/.test(rest) || /^(transformer\.token_embeddings|lm_head)\.weight$/.test(rest)) return 'base weights saved into the adapter (save_embedding_layers or modules_to_save) are not supported';
  if (!dora && rest.endsWith('lora_magnitude_vector')) return 'a DoRA tensor, but adapter_config.json has use_dora false';
  const mod = rest.replace(/\.(lora_A\.weight|lora_B\.weight|lora_embedding_A|lora_embedding_B|lora_magnitude_vector|lora_B\.bias)$/, '');
  if (mod !== rest && allAdaptableModules(c).some((m) => m.name === mod)) return `${mod} is not targeted by adapter_config.json`;
  return 'not a LoRA/DoRA tensor of an OpenELM module';
}

/** Stage both files of a PEFT adapter folder (temp files next to their final names) for commitAll. */
export function stagePeftAdapter(dir: string, a: Adapter, opts: { baseModel?: string | null } = {}): StagedFile[] {
  const weights = stageSafetensorsSync(path.join(dir, PEFT_WEIGHTS_FILE), peftTensors(a), { format: 'pt' });
  try {
    const json = Buffer.from(JSON.stringify(peftConfigJson(a.settings, opts.baseModel ?? a.baseModel ?? null), null, 2) + '\n');
    return [weights, stageFileSync(path.join(dir, PEFT_CONFIG_FILE), (fd) => writeAllSync(fd, json, 0))];
  } catch (e) {
    weights.discard();
    throw e;
  }
}

/**
 * Write a PEFT adapter folder (created if missing). Both files are written completely before
 * either replaces an existing one, so a failed write leaves an earlier adapter in place.
 */
export function writePeftAdapter(dir: string, a: Adapter, opts: { baseModel?: string | null } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  commitAll(stagePeftAdapter(dir, a, opts));
}
