import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { ensureModel } from '../../hub/index.js';
import { stderrProgress } from '../../hub/progress.js';

export const spec: CommandSpec = {
  name: 'download',
  summary: 'download a model from the Hugging Face hub into the shared HF cache; prints the local folder',
  positional: 'model',
  usage: 'openelm download (ORG/NAME | --model ORG/NAME) [--revision REV] [--cache-dir DIR]   (env: HF_ENDPOINT, HF_TOKEN, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE)',
  flags: [
    { name: 'model', type: 'string', help: 'hub model id, e.g. apple/OpenELM-270M-Instruct', required: true },
    { name: 'revision', type: 'string', help: 'branch, tag or commit', default: 'main' },
    { name: 'cache-dir', type: 'string', help: 'cache root (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)' },
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const ac = new AbortController();
  const onSig = () => ac.abort(new Error('interrupted'));
  process.once('SIGINT', onSig);
  try {
    const dir = await ensureModel(get.str(flags, 'model')!, {
      revision: get.str(flags, 'revision'), cacheDir: get.str(flags, 'cache-dir'), signal: ac.signal,
      onProgress: stderrProgress(), onWarning: (w) => process.stderr.write(`openelm download: warning: ${w}\n`),
    });
    process.stdout.write(dir + '\n');
    return 0;
  } finally {
    process.off('SIGINT', onSig);
  }
}
