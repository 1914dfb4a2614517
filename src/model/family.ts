// Rules that depend on which OpenELM a checkpoint is, kept in one place. Apple publishes each size as
// a base model and an -Instruct model (DPO-tuned, docs/architecture.md); the Instruct model cards
// generate with repetition_penalty 1.2, which greedy decoding of these small models needs to avoid
// loops, so that is the default for them here too.

/** Whether any of the names (hub id, folder, config `_name_or_path`) marks an -Instruct model. */
export function isInstructName(...names: (string | undefined)[]): boolean {
  return names.some((n) => n !== undefined && /instruct/i.test(n));
}

/** Generation defaults for a model: greedy, and repetition penalty 1.2 for -Instruct models. */
export function generationDefaults(instruct: boolean): { temperature: number; repetitionPenalty: number } {
  return { temperature: 0, repetitionPenalty: instruct ? 1.2 : 1 };
}
