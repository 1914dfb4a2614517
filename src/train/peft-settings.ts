// The adapter settings an adapter run trains with: the recipe's `peft:` block, completed from the
// `init` adapter's adapter_config.json when the run continues an existing adapter. A key the
// recipe sets must agree with that adapter (except dropout, a training choice), named when not.

import { OpenELMError } from '../core/errors.js';
import { checkSettings, type AdapterSettings } from '../adapters/adapter.js';
import { PEFT_DEFAULTS, type RecipePeft } from './recipe.js';

export function adapterSettingsFor(p: RecipePeft, init?: AdapterSettings, where = 'recipe.peft'): AdapterSettings {
  if (p.init !== undefined && !init) throw new OpenELMError('recipe', `${where}.init: the adapter at ${p.init} has not been read`);
  const fixed = ['type', 'r', 'alpha', 'rslora', 'targets'] as const;
  if (init) {
    for (const k of fixed) {
      const mine = p[k];
      if (mine === undefined) continue;
      const same = k === 'targets'
        ? [...(mine as string[])].sort().join() === [...init.targets].sort().join()
        : mine === init[k];
      if (!same) throw new OpenELMError('recipe', `${where}.${k} is ${JSON.stringify(mine)} but the adapter in ${p.init} has ${JSON.stringify(init[k])}; drop the key or make it agree`);
    }
  }
  const s: AdapterSettings = {
    type: p.type ?? init?.type ?? PEFT_DEFAULTS.type,
    r: p.r ?? init?.r ?? PEFT_DEFAULTS.r,
    alpha: p.alpha ?? init?.alpha ?? PEFT_DEFAULTS.alpha,
    dropout: p.dropout ?? init?.dropout ?? PEFT_DEFAULTS.dropout,
    targets: [...(init?.targets ?? p.targets ?? PEFT_DEFAULTS.targets)],
    rslora: p.rslora ?? init?.rslora ?? PEFT_DEFAULTS.rslora,
  };
  checkSettings(s, where);
  return s;
}
