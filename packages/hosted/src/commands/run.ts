/** `ebbrt run <app>`: start a frontend, launch natives, run the app, tear down; exit with the app's status. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { flagHelp, parseFlags, UsageError, type FlagSpec } from '@ebbrt/ebb-protocol/node';
import { AppArgsError, AppNotFoundError, appHint, checkApp, resolveApp, runApp } from '../app.js';

const FLAGS = [
  {
    name: 'nodes',
    type: 'int',
    value: 'N',
    min: 0,
    max: 64,
    help: 'native nodes to launch (default 2; 0 only for an app whose arguments say it runs on the frontend alone)',
  },
  { name: 'cores', type: 'int', value: 'C', min: 1, max: 256, help: 'cores (worker threads) per native node (default 2)' },
  {
    name: 'secret',
    type: 'string',
    value: 'S',
    minLength: 8,
    help: 'cluster secret (default: random per run, or env EBBRT_SECRET); visible to every user of the host, prefer --secret-file',
  },
  { name: 'secret-file', type: 'string', value: 'FILE', help: 'read the cluster secret from FILE (or env EBBRT_SECRET_FILE)' },
  { name: 'host', type: 'string', value: 'H', help: "address the frontend's messenger binds (default 127.0.0.1)" },
  { name: 'port', type: 'int', value: 'P', min: 0, max: 65535, help: "port the frontend's messenger binds (default: any free port)" },
  {
    name: 'store',
    type: 'string',
    value: 'URL',
    help: 'cluster store: memory (default) or redis://host:port/db, rediss://…, redis+cluster://host:port,… (or env EBBRT_STORE)',
  },
  { name: 'cluster', type: 'string', value: 'NAME', help: "cluster name namespacing the store's keys (default ebbrt)" },
  {
    name: 'reconnect-ms',
    type: 'int',
    value: 'MS',
    min: 0,
    max: 3_600_000,
    help: 'how long natives try to re-register after losing the frontend before they exit (default 3000; lengthen it with a Redis store to survive a frontend restart)',
  },
  { name: 'tls-cert', type: 'string', value: 'FILE', help: "messenger TLS: this cluster's certificate (PEM); needs --tls-key and --tls-ca" },
  { name: 'tls-key', type: 'string', value: 'FILE', help: "messenger TLS: the certificate's private key (PEM)" },
  { name: 'tls-ca', type: 'string', value: 'FILE', help: 'messenger TLS: the CA certificate peers must be signed by (PEM)' },
  { name: 'backend', type: 'string', value: 'B', choices: ['process', 'qemu'], help: 'how natives are launched: process (default) or qemu (each native a VM)' },
  { name: 'memory', type: 'int', value: 'MiB', min: 320, max: 1_048_576, help: 'memory of each native VM, MiB (qemu; default 512)' },
  {
    name: 'accel',
    type: 'string',
    value: 'A',
    choices: ['auto', 'kvm', 'tcg'],
    help: 'qemu accelerator: auto (default: KVM if a probe boots, else TCG), kvm, tcg',
  },
  {
    name: 'network',
    type: 'string',
    value: 'M',
    choices: ['user', 'tap'],
    help: 'how qemu natives are reached: user (default; each port an app opens is forwarded from the host) or tap (root; each VM its own address on a bridge)',
  },
] as const satisfies readonly FlagSpec[];

export const summary = 'run an app on a fresh cluster';

export const usage = `usage: ebbrt run <app> [options] [-- app args]

  <app>  ${appHint()}

options:
${flagHelp(FLAGS)}

Logs are pino JSON lines on stderr; set EBBRT_LOG=debug|info|warn|error (default warn).`;

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
  const f = parsed.flags;
  // Everything the app and its arguments need is checked before anything boots.
  let nodes: number;
  try {
    nodes = await checkApp(app, parsed.rest, f.nodes);
  } catch (error) {
    if (!(error instanceof AppArgsError)) throw error;
    process.stderr.write(`ebbrt run: ${error.message}\n`);
    return 2;
  }
  const abort = new AbortController();
  const onSignal = () => {
    if (abort.signal.aborted) process.exit(130);
    process.stderr.write('ebbrt: interrupted; stopping the cluster\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const tlsFiles = [f['tls-cert'], f['tls-key'], f['tls-ca']];
  if (tlsFiles.some(Boolean) && !tlsFiles.every(Boolean)) throw new UsageError('TLS needs all three of --tls-cert, --tls-key and --tls-ca');
  let tls: { cert: string; key: string; ca: string } | undefined;
  try {
    if (tlsFiles.every(Boolean))
      tls = { cert: readFileSync(tlsFiles[0]!, 'utf8'), key: readFileSync(tlsFiles[1]!, 'utf8'), ca: readFileSync(tlsFiles[2]!, 'utf8') };
  } catch (error) {
    throw new UsageError(`cannot read a TLS file: ${(error as Error).message}`);
  }
  try {
    return await runApp(app, {
      nodes,
      cores: f.cores ?? 2,
      secret: f.secret ?? readSecretFile(f['secret-file'] ?? process.env.EBBRT_SECRET_FILE) ?? process.env.EBBRT_SECRET ?? randomBytes(16).toString('hex'),
      host: f.host,
      port: f.port,
      store: f.store ?? process.env.EBBRT_STORE,
      cluster: f.cluster,
      reconnectMs: f['reconnect-ms'],
      tls,
      backend: f.backend,
      memoryMiB: f.memory,
      accel: f.accel,
      network: f.network,
      args: parsed.rest,
      signal: abort.signal,
    });
  } catch (error) {
    process.stderr.write(`ebbrt: ${(error as Error).message}\n`);
    return 1;
  }
}

/** The secret in `file` (one trailing newline dropped), or undefined without a file. */
function readSecretFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (error) {
    throw new UsageError(`cannot read the secret file: ${(error as Error).message}`);
  }
  if (text.length < 8) throw new UsageError(`the secret file ${file} must hold at least 8 characters`);
  return text;
}
