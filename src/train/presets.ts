// CoreNet's pretraining hyper-parameters for the four OpenELM sizes (docs/training.md, from
// projects/openelm/pretraining_configs/openelm_*.yaml), expressed as recipe defaults. A recipe that
// names a preset model (or `defaults: OpenELM-450M`) gets these for every key it leaves out.
//
// Global batch: CoreNet trains on 128 GPUs × 16 sequences = 2048 sequences of 2048 tokens (~4M
// tokens per step). On one machine that is batch_size 16 × grad_accum 128: the same optimizer
// step, with gradients averaged over the 128 micro-batch means exactly as DDP averages its ranks.

import { OpenELMError } from '../core/errors.js';

export type PresetSize = '270M' | '450M' | '1_1B' | '3B';

const MAX_LR: Record<PresetSize, number> = { '270M': 5.3e-3, '450M': 3.9e-3, '1_1B': 2.4e-3, '3B': 1.2e-3 };
// max / 10, written out as the YAMLs do (2.4e-3 / 10 is not 2.4e-4 in floating point).
const MIN_LR: Record<PresetSize, number> = { '270M': 5.3e-4, '450M': 3.9e-4, '1_1B': 2.4e-4, '3B': 1.2e-4 };

/** Normalise "OpenELM-1.1B", "apple/OpenELM-1_1B-Instruct", "1_1B" … to a size key. */
export function presetSize(name: string): PresetSize | undefined {
  const m = /^(?:apple\/)?(?:OpenELM-)?(270M|450M|1_1B|1\.1B|3B)(?:-Instruct)?$/i.exec(name.trim());
  if (!m) return undefined;
  const s = m[1].toUpperCase().replace('1.1B', '1_1B');
  return (Object.keys(MAX_LR) as PresetSize[]).find((k) => k.toUpperCase() === s);
}

/** Recipe keys (snake_case, as written in a recipe) with CoreNet's values for one size. */
export function corenetDefaults(size: PresetSize): Record<string, unknown> {
  const lr = MAX_LR[size];
  return {
    seq_len: 2048,
    batch_size: 16,
    grad_accum: 128,
    steps: 350_000,
    pipeline: { mode: 'pad', shuffle: true, min_chars: 200, min_tokens: 256, split_words: 2048 },
    optimizer: { lr, betas: [0.9, 0.95], eps: 1e-8, weight_decay: 0.1 },
    schedule: { type: 'cosine', warmup_steps: 5000, warmup_init_lr: 1e-6, min_lr: MIN_LR[size] },
    clip_grad_norm: 1.0,
    z_loss: 1e-4,
    // CoreNet turns activation checkpointing on for 450M and up.
    recompute: size !== '270M',
    log_every: 500,
    checkpoint_every: 5000,
  };
}

/** Defaults for recipes without a preset: CoreNet's size-independent choices; lr, steps, seq_len, batch_size must be given. */
export function genericDefaults(): Record<string, unknown> {
  return {
    grad_accum: 1,
    pipeline: { mode: 'pad', shuffle: true, min_chars: 200, min_tokens: 256, split_words: 2048 },
    optimizer: { betas: [0.9, 0.95], eps: 1e-8, weight_decay: 0.1 },
    schedule: { type: 'cosine', warmup_steps: 0, warmup_init_lr: 1e-6 },
    clip_grad_norm: 1.0,
    z_loss: 1e-4,
    recompute: false,
    log_every: 10,
  };
}

export function presetMaxLr(name: string): number {
  const s = presetSize(name);
  if (!s) throw new OpenELMError('config', `unknown OpenELM size "${name}"`);
  return MAX_LR[s];
}

/** HF config.json fields a custom `model.config` inherits unless it sets them (OpenELM's values). */
export function customConfigDefaults(seqLen: number): Record<string, unknown> {
  return {
    model_type: 'openelm', architectures: ['OpenELMForCausalLM'],
    num_gqa_groups: 4, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 256,
    ffn_with_glu: true, activation_fn_name: 'swish', normalization_layer_name: 'rms_norm',
    normalize_qk_projections: true, share_input_output_layers: true, rope_freq_constant: 10000,
    rope_max_length: Math.max(4096, seqLen), max_context_length: Math.max(2048, seqLen),
    vocab_size: 32000, bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02,
  };
}
