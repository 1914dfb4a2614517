// What the training loop asks of a task (pretrain, sft, dpo). The loop (trainer.ts) owns the model,
// the optimizer, clipping, the schedule, checkpoints, metrics and the report; a task owns its data
// and turns one optimizer step's worth of it into gradients on whatever parameters the model
// trains. Everything a task needs to continue bit-identically goes into its checkpoint state.

import type { TrainableModel } from '../model/trainable.js';

export interface StepResult {
  /** The step's loss, logged as `loss`. */
  loss: number;
  /** Loss-bearing tokens of the step. */
  tokens: number;
  /** Further per-step numbers, averaged over the steps of a log interval (DPO's rewards/*, logps/*). */
  metrics?: Record<string, number>;
}

/** What the loop tells a task about the step it runs. */
export interface StepContext {
  /** Seed of micro-batch `micro`'s adapter dropout masks (from the recipe's seed and the step, so a resumed run draws the same). */
  dropoutSeed(micro: number): number;
}

/** A task's position in its data: JSON for trainer_state.json, arrays for data_state.safetensors. */
export interface TaskState {
  json: unknown;
  tensors: Record<string, Int32Array | Float64Array>;
}

export interface TrainTask {
  /** One line for the log: what a step holds. */
  describeBatch(): string;
  /** Fresh runs only, once the model holds its initial weights and before the first step; returns early when `signal` is aborted. */
  prepare?(model: TrainableModel, signal?: AbortSignal): Promise<void>;
  /** Zero-gradient-in, gradients-out: the micro-batches of one optimizer step, gradients added to the model's. */
  step(model: TrainableModel, ctx: StepContext): Promise<StepResult>;
  /** Validation numbers (`loss` becomes val_loss, any other key val_<key>), or undefined without validation data. */
  evaluate(model: TrainableModel): Promise<Record<string, number> | undefined>;
  getState(): TaskState;
  /** Files written into every checkpoint beside the weights (name → text), so the folder is usable as it was trained. */
  checkpointFiles?(): Record<string, string>;
  setState(json: unknown, tensors: Record<string, Int32Array | Float64Array>): void;
  /** Report and end-of-run lines (data statistics). */
  notes(): string[];
  close(): Promise<void>;
}
