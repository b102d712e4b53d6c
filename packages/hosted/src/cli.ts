#!/usr/bin/env node
/**
 * `ebbrt`: the command line. `ebbrt run <app> [--nodes N] [--cores C] [--secret S] [-- app args]`.
 * Bad flags print what is wrong and exit 2.
 */
import { randomBytes } from 'node:crypto';
import { resolveApp, runApp, AppNotFoundError } from './app.js';

const USAGE = `usage: ebbrt run <app> [options] [-- app args]

  <app>              an example name (helloworld, pingpong, counter) or the path of a
                     folder holding hosted.js and native.js

options:
  --nodes N          native nodes to launch (default 2; 0 runs the hosted side alone)
  --cores C          cores (worker threads) per native node (default 2)
  --secret S         cluster secret (default: random per run; env EBBRT_SECRET)
  --host H           address the frontend's messenger binds (default 127.0.0.1)
  --port P           port the frontend's messenger binds (default: any free port)
  -h, --help         show this help

Logs are JSON lines on stderr; set EBBRT_LOG=debug|info|warn|error (default warn).`;

class UsageError extends Error {}

interface Parsed {
  command: 'run' | 'help';
  app?: string;
  nodes: number;
  cores: number;
  secret: string;
  host?: string;
  port?: number;
  args: string[];
}

function positiveInt(flag: string, value: string | undefined, min: number, max: number): number {
  if (value === undefined) throw new UsageError(`${flag} needs a value`);
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new UsageError(`${flag} must be an integer in ${min}..${max}, got "${value}"`);
  return n;
}

function parseArgs(argv: string[]): Parsed {
  const parsed: Parsed = { command: 'help', nodes: 2, cores: 2, secret: process.env.EBBRT_SECRET ?? randomBytes(16).toString('hex'), args: [] };
  if (argv.length === 0 || argv[0] === '-h' || argv[0] === '--help' || argv[0] === 'help') return parsed;
  if (argv[0] !== 'run') throw new UsageError(`unknown command "${argv[0]}"; the command is "run"`);
  parsed.command = 'run';
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      parsed.args = argv.slice(i + 1);
      break;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const next = () => (eq > 0 ? arg.slice(eq + 1) : argv[++i]);
    switch (flag) {
      case '-h':
      case '--help':
        parsed.command = 'help';
        return parsed;
      case '--nodes':
        parsed.nodes = positiveInt('--nodes', next(), 0, 64);
        break;
      case '--cores':
        parsed.cores = positiveInt('--cores', next(), 1, 256);
        break;
      case '--port':
        parsed.port = positiveInt('--port', next(), 0, 65535);
        break;
      case '--secret': {
        const secret = next();
        if (!secret || secret.length < 8) throw new UsageError('--secret must be at least 8 characters');
        parsed.secret = secret;
        break;
      }
      case '--host': {
        const host = next();
        if (!host) throw new UsageError('--host needs a value');
        parsed.host = host;
        break;
      }
      default:
        if (flag.startsWith('-')) throw new UsageError(`unknown option ${flag}`);
        if (parsed.app !== undefined) throw new UsageError(`unexpected argument "${arg}"; app arguments go after --`);
        parsed.app = arg;
    }
  }
  if (parsed.app === undefined) throw new UsageError('ebbrt run needs an app: an example name or an app folder');
  return parsed;
}

async function cli(argv: string[]): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`ebbrt: ${error.message}\n\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  if (parsed.command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let app;
  try {
    app = resolveApp(parsed.app!);
  } catch (error) {
    if (error instanceof AppNotFoundError) {
      process.stderr.write(`ebbrt: ${error.message}\n`);
      return 2;
    }
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
  try {
    return await runApp(app, { nodes: parsed.nodes, cores: parsed.cores, secret: parsed.secret, host: parsed.host, port: parsed.port, args: parsed.args, signal: abort.signal });
  } catch (error) {
    process.stderr.write(`ebbrt: ${(error as Error).message}\n`);
    return 1;
  }
}

process.exit(await cli(process.argv.slice(2)));
