import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { resolveModelDir } from '../common.js';
import { startWebAppServer } from '../../serve/web-app.js';

export const spec: CommandSpec = {
  name: 'web',
  summary: 'serve the browser app with a model: chat with and fine-tune it in a browser on this machine',
  usage: 'openelm web --model DIR|ORG/NAME [--host 127.0.0.1] [--port 8080]',
  flags: [
    { name: 'model', type: 'string', help: 'model folder (config.json + model.safetensors) or hub id (downloaded first)', required: true },
    { name: 'host', type: 'string', help: 'address to bind; 0.0.0.0 exposes the app to the network', default: '127.0.0.1' },
    { name: 'port', type: 'int', help: 'port (0 = any free port)', default: 8080, min: 0, max: 65535 },
    { name: 'quiet', type: 'bool', help: 'do not log requests on stderr' },
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const model = get.str(flags, 'model')!;
  const dir = await resolveModelDir(model);
  const quiet = get.bool(flags, 'quiet');
  const srv = await startWebAppServer({
    modelDir: dir, name: model, host: get.str(flags, 'host'), port: get.num(flags, 'port'),
    log: quiet ? undefined : (l) => process.stderr.write(`${l}\n`),
  });
  process.stderr.write(`openelm web: open ${srv.url} (serving ${model}${dir !== model ? ` from ${dir}` : ''}; Ctrl-C stops)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await srv.close();
  process.stderr.write('openelm web: stopped\n');
  return 0;
}
