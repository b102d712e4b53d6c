/**
 * Boot configuration of a native node, from argv flags or EBBRT_* environment
 * variables (argv wins). Bad values are a {@link BootConfigError} naming the fix.
 */
// Only the error module: boot parses its config before loading the protocol stack.
import { EbbError } from '@ebbrt/ebb-protocol/errors';

export class BootConfigError extends EbbError {
  constructor(message: string) {
    super('BAD_CONFIG', message);
  }
}

export interface BootConfig {
  /** Frontend messenger address. */
  frontendHost: string;
  frontendPort: number;
  secret: string;
  allocationId: string;
  cores: number;
  /** Absolute path (or file URL) of the app's native module. */
  app: string;
  /** Address this node's messenger binds. */
  listenHost: string;
  backend: string;
  /** Arguments after `--`, passed to the app's `main`. */
  args: string[];
}

const FLAGS: Record<string, string> = {
  '--frontend': 'EBBRT_FRONTEND',
  '--secret': 'EBBRT_SECRET',
  '--allocation-id': 'EBBRT_ALLOCATION_ID',
  '--cores': 'EBBRT_CORES',
  '--app': 'EBBRT_APP',
  '--listen-host': 'EBBRT_LISTEN_HOST',
  '--backend': 'EBBRT_BACKEND',
};

export function parseBootConfig(argv: readonly string[], env: NodeJS.ProcessEnv): BootConfig {
  const values: Record<string, string | undefined> = {};
  for (const variable of Object.values(FLAGS)) values[variable] = env[variable];
  let args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      args = argv.slice(i + 1);
      break;
    }
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const variable = FLAGS[flag];
    if (!variable) throw new BootConfigError(`unknown flag ${flag}; known flags: ${Object.keys(FLAGS).join(', ')}`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new BootConfigError(`${flag} needs a value`);
    values[variable] = value;
  }
  const frontend = values.EBBRT_FRONTEND;
  const match = frontend ? /^(.+):(\d+)$/.exec(frontend) : null;
  if (!match) throw new BootConfigError('the frontend address is missing or malformed: pass --frontend host:port or set EBBRT_FRONTEND');
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw new BootConfigError(`frontend port ${port} is out of range 1..65535`);
  const secret = values.EBBRT_SECRET;
  if (!secret) throw new BootConfigError('the cluster secret is missing: pass --secret or set EBBRT_SECRET to the frontend\'s secret');
  const cores = Number(values.EBBRT_CORES ?? '1');
  if (!Number.isInteger(cores) || cores < 1 || cores > 256) throw new BootConfigError(`cores must be an integer in 1..256, got ${values.EBBRT_CORES}`);
  const app = values.EBBRT_APP;
  if (!app) throw new BootConfigError('no app: pass --app <path of the app\'s native module> or set EBBRT_APP');
  return {
    frontendHost: match[1],
    frontendPort: port,
    secret,
    allocationId: values.EBBRT_ALLOCATION_ID ?? '',
    cores,
    app,
    listenHost: values.EBBRT_LISTEN_HOST ?? '127.0.0.1',
    backend: values.EBBRT_BACKEND ?? 'process',
    args,
  };
}
