// Learning-rate schedules. t is the number of completed optimizer steps (0 for the first step):
// the LR is computed before each step, as CoreNet does (docs/training.md).
//
// CoreNet cosine (corenet/optims/scheduler/cosine.py):
//   t < W:  lr = init + t·(max − init)/W
//   else:   lr = min + ½(max − min)(1 + cos(π·(t − W)/(T − W + 1)))
// with W warm-up steps, T max steps, init the warm-up start (1e-6 in OpenELM's YAMLs).
//
// HF cosine (transformers get_cosine_schedule_with_warmup, the `cosine` lr_scheduler_type of the
// TRL/alignment-handbook runs that made OpenELM-Instruct):
//   t < W:  lr = max · t / max(1, W)
//   else:   lr = max · max(0, ½(1 + cos(π·(t − W)/max(1, T − W))))
// It starts at 0 (the first update of a warm-up does nothing) and reaches 0 at t = T.

import { OpenELMError } from '../core/errors.js';

export interface LRSchedule { lr(t: number): number; }

export interface CosineOptions {
  maxLr: number;
  minLr: number;
  warmupSteps: number;
  maxSteps: number;
  /** LR at t = 0 of the warm-up (CoreNet's warmup_init_lr). Default 1e-6. */
  warmupInitLr?: number;
}

export interface ConstantOptions {
  lr: number;
  warmupSteps?: number;
  warmupInitLr?: number;
}

function nonNeg(name: string, v: number): void {
  if (!(Number.isFinite(v) && v >= 0)) throw new OpenELMError('usage', `${name} must be a non-negative number, got ${v}`);
}

function warmup(t: number, W: number, init: number, max: number): number {
  return init + (t * (max - init)) / W;
}

export function cosineSchedule(o: CosineOptions): LRSchedule {
  const init = o.warmupInitLr ?? 1e-6;
  nonNeg('maxLr', o.maxLr); nonNeg('minLr', o.minLr); nonNeg('warmupInitLr', init);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0) throw new OpenELMError('usage', `warmupSteps must be a non-negative integer, got ${o.warmupSteps}`);
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < o.warmupSteps) throw new OpenELMError('usage', `maxSteps (${o.maxSteps}) must be an integer >= warmupSteps (${o.warmupSteps})`);
  const { maxLr: max, minLr: min, warmupSteps: W, maxSteps: T } = o;
  return {
    lr(t: number): number {
      if (t < W) return warmup(t, W, init, max);
      return min + 0.5 * (max - min) * (1 + Math.cos((Math.PI * (t - W)) / (T - W + 1)));
    },
  };
}

export interface HfCosineOptions { maxLr: number; warmupSteps: number; maxSteps: number; }

export function hfCosineSchedule(o: HfCosineOptions): LRSchedule {
  nonNeg('maxLr', o.maxLr);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0) throw new OpenELMError('usage', `warmupSteps must be a non-negative integer, got ${o.warmupSteps}`);
  if (!Number.isInteger(o.maxSteps) || o.maxSteps < o.warmupSteps) throw new OpenELMError('usage', `maxSteps (${o.maxSteps}) must be an integer >= warmupSteps (${o.warmupSteps})`);
  const { maxLr: max, warmupSteps: W, maxSteps: T } = o;
  return {
    lr(t: number): number {
      if (t < W) return (max * t) / Math.max(1, W);
      const progress = (t - W) / Math.max(1, T - W);
      return max * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    },
  };
}

export function constantSchedule(o: ConstantOptions): LRSchedule {
  const W = o.warmupSteps ?? 0, init = o.warmupInitLr ?? 1e-6;
  nonNeg('lr', o.lr); nonNeg('warmupInitLr', init);
  if (!Number.isInteger(W) || W < 0) throw new OpenELMError('usage', `warmupSteps must be a non-negative integer, got ${W}`);
  return { lr: (t: number) => (t < W ? warmup(t, W, init, o.lr) : o.lr) };
}
