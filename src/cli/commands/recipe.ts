import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { writeFileAtomicSync } from '../../io/atomic.js';
import { loadRecipe, parseRecipe } from '../../train/recipe.js';
import { readYamlFile } from '../../formats/corenet.js';
import { DEFAULT_GPUS, exportCorenetRecipe, importCorenetRecipe } from '../../formats/corenet-recipe.js';

export const spec: CommandSpec = {
  name: 'recipe',
  summary: 'export a training recipe as a CoreNet YAML, or import a CoreNet YAML as a recipe',
  usage: [
    'openelm recipe export --to corenet RECIPE.yaml --out CORENET.yaml [--gpus N] [--json]',
    '       openelm recipe import CORENET.yaml --out RECIPE.yaml [--gpus N] [--json]',
  ].join('\n'),
  positional: 'args',
  flags: [
    { name: 'args', type: 'string', help: 'export|import, then the file to convert', repeatable: true },
    { name: 'to', type: 'string', help: 'export: the target format', default: 'corenet', choices: ['corenet'] },
    { name: 'out', type: 'string', help: 'the file to write', required: true },
    { name: 'gpus', type: 'int', help: `GPUs the CoreNet run uses (splits the global batch; default ${DEFAULT_GPUS}, Apple's layout)`, min: 1 },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const args = get.list(flags, 'args');
  const [action, file, ...rest] = args;
  if (action !== 'export' && action !== 'import') throw new OpenELMError('usage', `openelm recipe needs "export" or "import" first (got ${action === undefined ? 'nothing' : `"${action}"`})`);
  if (!file) throw new OpenELMError('usage', `openelm recipe ${action} needs the file to convert`);
  if (rest.length) throw new OpenELMError('usage', `unexpected argument "${rest[0]}"`);
  if (!fs.existsSync(file)) throw new OpenELMError('usage', `${action === 'export' ? 'recipe' : 'CoreNet config'} file ${file} does not exist`);
  const out = get.str(flags, 'out')!;
  if (path.resolve(out) === path.resolve(file)) throw new OpenELMError('usage', `--out ${out} is the input; choose another file`);
  const gpus = get.num(flags, 'gpus');
  let r: ReturnType<typeof exportCorenetRecipe>;
  if (action === 'export') {
    r = exportCorenetRecipe(loadRecipe(file), { gpus });
  } else {
    const imported = importCorenetRecipe(readYamlFile(file, 'CoreNet config'), file, { gpus });
    // The result must be a recipe this tool accepts (data paths are checked when training starts).
    parseRecipe(imported.recipe, path.resolve(out));
    r = imported;
  }
  writeFileAtomicSync(out, r.text);
  if (get.bool(flags, 'json')) printJson({ file: out, action, not_carried: r.notCarried });
  else {
    process.stderr.write(`wrote ${out}\n`);
    if (r.notCarried.length) process.stderr.write(`not carried over (${r.notCarried.length}):\n${r.notCarried.map((l) => `  - ${l}`).join('\n')}\n`);
  }
  return 0;
}
