/** `ebbrt run <app>`: start a frontend, launch natives, run the app, tear down; exit with the app's status. */
import { randomBytes } from 'node:crypto';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '../args.js';
import { AppNotFoundError, resolveApp, runApp } from '../app.js';

const FLAGS: FlagSpec[] = [
  { name: 'nodes', type: 'int', value: 'N', min: 0, max: 64, help: 'native nodes to launch (default 2; 0 runs the hosted side alone)' },
  { name: 'cores', type: 'int', value: 'C', min: 1, max: 256, help: 'cores (worker threads) per native node (default 2)' },
  { name: 'secret', type: 'string', value: 'S', minLength: 8, help: 'cluster secret (default: random per run, or env EBBRT_SECRET)' },
  { name: 'host', type: 'string', value: 'H', help: "address the frontend's messenger binds (default 127.0.0.1)" },
  { name: 'port', type: 'int', value: 'P', min: 0, max: 65535, help: "port the frontend's messenger binds (default: any free port)" },
];

export const summary = 'run an app on a fresh cluster';

export const usage = `usage: ebbrt run <app> [options] [-- app args]

  <app>  an example name (helloworld, pingpong, counter) or the path of a folder
         holding hosted.js and native.js

options:
${flagHelp(FLAGS)}
  -h, --help          show this help

Logs are JSON lines on stderr; set EBBRT_LOG=debug|info|warn|error (default warn).`;

export async function command(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, FLAGS);
  if (parsed.help) {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (parsed.positionals.length === 0) throw new UsageError('ebbrt run needs an app: an example name or an app folder');
  if (parsed.positionals.length > 1) throw new UsageError(`unexpected argument "${parsed.positionals[1]}"; app arguments go after --`);
  let app;
  try {
    app = resolveApp(parsed.positionals[0]);
  } catch (error) {
    if (error instanceof AppNotFoundError) throw new UsageError(error.message);
    throw error;
  }
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    process.stderr.write('ebbrt: interrupted; stopping the cluster\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const f = parsed.flags;
  try {
    return await runApp(app, {
      nodes: (f.nodes as number | undefined) ?? 2,
      cores: (f.cores as number | undefined) ?? 2,
      secret: (f.secret as string | undefined) ?? process.env.EBBRT_SECRET ?? randomBytes(16).toString('hex'),
      host: f.host as string | undefined,
      port: f.port as number | undefined,
      args: parsed.rest,
      signal: abort.signal,
    });
  } catch (error) {
    process.stderr.write(`ebbrt: ${(error as Error).message}\n`);
    return 1;
  }
}
