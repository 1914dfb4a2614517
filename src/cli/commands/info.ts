import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, resolveModelDir } from '../common.js';
import { readModelConfig } from '../../io/model-folder.js';
import { parameterCount, kvValuesPerToken, presetHFConfig, resolveConfig } from '../../model/config.js';
import { OpenELMError } from '../../core/errors.js';

export const spec: CommandSpec = {
  name: 'info',
  summary: 'show the resolved config, per-layer heads and FFN widths, and the parameter count',
  usage: 'openelm info (--model DIR | --preset NAME) [--json]',
  flags: [
    { name: 'model', type: 'string', help: 'model folder with config.json, or a GGUF file' },
    { name: 'preset', type: 'string', help: 'a built-in size instead of a folder, e.g. OpenELM-270M' },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const model = get.str(flags, 'model'), preset = get.str(flags, 'preset');
  if (!model === !preset) throw new OpenELMError('usage', 'give exactly one of --model or --preset');
  const c = model ? readModelConfig(await resolveModelDir(model)) : resolveConfig(presetHFConfig(preset!));
  const layers = c.numQueryHeads.map((q, i) => ({
    layer: i, query_heads: q, kv_heads: c.numKvHeads[i], ffn_dim: c.ffnDims[i],
    qkv_multiplier: c.qkvMultipliers[i], ffn_multiplier: c.ffnMultipliers[i],
  }));
  const info = {
    num_layers: c.numLayers, model_dim: c.modelDim, head_dim: c.headDim, vocab_size: c.vocabSize,
    num_gqa_groups: c.numGqaGroups, max_context_length: c.maxContextLength, rope_freq_constant: c.ropeFreqConstant,
    tied_embeddings: c.tiedEmbeddings, parameters: parameterCount(c), kv_values_per_token: kvValuesPerToken(c), layers,
  };
  if (get.bool(flags, 'json')) { printJson(info); return 0; }
  const out: string[] = [];
  out.push(`layers ${c.numLayers}  model_dim ${c.modelDim}  head_dim ${c.headDim}  vocab ${c.vocabSize}  context ${c.maxContextLength}`);
  out.push(`parameters ${info.parameters.toLocaleString('en-US')}  (tied embedding ${c.tiedEmbeddings ? 'yes' : 'no'}, GQA group ${c.numGqaGroups})`);
  out.push('');
  out.push('layer  q_heads  kv_heads  ffn_dim');
  for (const l of layers) out.push(`${String(l.layer).padStart(5)}  ${String(l.query_heads).padStart(7)}  ${String(l.kv_heads).padStart(8)}  ${String(l.ffn_dim).padStart(7)}`);
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
