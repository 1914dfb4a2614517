import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { UsageError, OpenELMError } from '../../core/errors.js';
import { ensureModel } from '../../hub/index.js';
import { checkRepoId, checkRevision } from '../../hub/cache.js';
import { stderrProgress } from '../../hub/progress.js';

export const spec: CommandSpec = {
  name: 'download',
  summary: 'download a model from the Hugging Face hub into the shared HF cache; prints the local folder',
  positional: 'model',
  usage: 'openelm download (ORG/NAME | --model ORG/NAME) [--revision REV] [--cache-dir DIR] [--force]   (env: HF_ENDPOINT, HF_TOKEN, HF_HOME / HF_HUB_CACHE, HF_HUB_OFFLINE)',
  flags: [
    { name: 'model', type: 'string', help: 'hub model id, e.g. apple/OpenELM-270M-Instruct', required: true },
    { name: 'revision', type: 'string', help: 'branch, tag or commit', default: 'main' },
    { name: 'cache-dir', type: 'string', help: 'cache root (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub)' },
    { name: 'force', type: 'bool', help: 'check every cached file against the hub\'s hash and download the missing or corrupt ones again (repairs a damaged cache)' },
  ],
};

/** A bad id or revision is a usage error, not a download failure. */
function checkArgs(id: string, revision: string): void {
  try {
    checkRepoId(id);
    checkRevision(revision);
  } catch (e) {
    if (e instanceof OpenELMError) throw new UsageError(e.message);
    throw e;
  }
}

export async function run(flags: ParsedFlags): Promise<number> {
  const id = get.str(flags, 'model')!, revision = get.str(flags, 'revision')!;
  checkArgs(id, revision);
  const ac = new AbortController();
  const onSig = () => ac.abort(new OpenELMError('interrupted', 'interrupted'));
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  try {
    const dir = await ensureModel(id, {
      revision, cacheDir: get.str(flags, 'cache-dir'), signal: ac.signal, force: get.bool(flags, 'force'),
      onProgress: stderrProgress(), onWarning: (w) => process.stderr.write(`openelm download: warning: ${w}\n`),
    });
    process.stdout.write(dir + '\n');
    return 0;
  } catch (e) {
    if (!ac.signal.aborted) throw e;
    // What arrived so far stays in the cache as <blob>.incomplete; the next run continues it.
    const again = ['openelm download', id, ...(revision !== 'main' ? ['--revision', revision] : []), ...(flags['cache-dir'] !== undefined ? ['--cache-dir', get.str(flags, 'cache-dir')!] : [])].join(' ');
    process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}openelm download: interrupted; the part already downloaded is kept, and running "${again}" again resumes it\n`);
    return 130;
  } finally {
    process.off('SIGINT', onSig);
    process.off('SIGTERM', onSig);
  }
}
