/**
 * The boot configuration of a native node: the one contract between whoever
 * launches a native (the hosted frontend's backends, a container spec, a
 * person) and the native's boot. Every setting has one name, spelled three
 * ways: the flag `--<name>`, the environment variable `EBBRT_<NAME>` and the
 * kernel command line parameter `ebbrt.<name>` (native VMs). Launchers write
 * settings with {@link bootEnv} or {@link bootKernelParams}; the native reads
 * them with {@link parseBootConfig} (argv wins over the environment, which
 * wins over the kernel command line). Bad values are a
 * {@link BootConfigError} naming the fix.
 */
import { closeSync, readFileSync } from 'node:fs';
// Only the error module: a native parses its config before loading the protocol stack.
import { EbbError, type EbbErrorOptions } from '../wire/errors.js';
import { parseFlags, type FlagSpec } from './args.js';

export class BootConfigError extends EbbError {
  constructor(message: string, options?: EbbErrorOptions) {
    super('BAD_CONFIG', message, options);
  }
}

export interface BootConfig {
  /** Frontend messenger address. */
  frontendHost: string;
  frontendPort: number;
  /**
   * What proves the node's first JOIN: the one-time join token its launcher got from the frontend
   * (delivered with the secrets, never on a command line), or the cluster secret (a node started by hand).
   */
  proof: { joinToken: string } | { secret: string };
  allocationId: string;
  cores: number;
  /** Absolute path (or file URL) of the app's native module. */
  app: string;
  /** Address this node's messenger binds. */
  listenHost: string;
  /** Port this node's messenger binds (0 = any free port). */
  listenPort: number;
  /**
   * Address reported to the frontend and peers, when it differs from the bound
   * one: a VM binds 0.0.0.0:P inside and is reached through a host port forward.
   */
  advertise?: { host: string; port: number };
  /** Hosts replaced when connecting to peers (a VM reaches the host's loopback at 10.0.2.2). */
  hostAlias: Record<string, string>;
  backend: string;
  /** How the node's listeners are reached from outside: `local` (default), `forward:<serial device>` or `address:<ip>` (VM natives; expose.ts). */
  services?: string;
  /** Arguments after `--`, passed to the app's `main`. */
  args: string[];
  /** How long to keep trying to re-register after losing the frontend, ms (0 = exit at once). */
  reconnectMs: number;
  /** TLS for every messenger connection (PEM text), when the cluster runs it. */
  tls?: { cert: string; key: string; ca: string };
  /**
   * A pipe inherited from the frontend process that launched this node: when it closes, that process is gone
   * and the node exits unless a frontend takes it back within `reconnectMs`.
   */
  parentFd?: number;
  /** Heap limit of each core's worker thread (V8 old generation), MB; past it that core ends, not the whole process by surprise. Default: Node's. */
  coreHeapMb?: number;
  /** Print the boot's timeline (one `ebbrt-boot-trace {…}` line on stderr) once every core loaded the app. */
  bootTrace: boolean;
}

/** Every boot setting: its field in {@link BootSettings} → its name (`--name`, `EBBRT_NAME`, `ebbrt.name`). */
const BOOT_SETTINGS = {
  frontend: 'frontend',
  secret: 'secret',
  secretFile: 'secret-file',
  secretsFd: 'secrets-fd',
  allocationId: 'allocation-id',
  cores: 'cores',
  app: 'app',
  listenHost: 'listen-host',
  backend: 'backend',
  reconnectMs: 'reconnect-ms',
  tlsCert: 'tls-cert',
  tlsKey: 'tls-key',
  tlsCa: 'tls-ca',
  listenPort: 'listen-port',
  advertise: 'advertise',
  hostAlias: 'host-alias',
  services: 'services',
  net: 'net',
  kernelCmdline: 'kernel-cmdline',
  parentFd: 'parent-fd',
  coreHeapMb: 'core-heap-mb',
  bootTrace: 'boot-trace',
} as const;

/**
 * Boot settings as a launcher writes them, each in its encoded form (the
 * string {@link parseBootConfig} reads; numbers are written in decimal).
 * `hostAlias` is `from=to,…`, `advertise` and `frontend` are `host:port`.
 */
export type BootSettings = { [K in keyof typeof BOOT_SETTINGS]?: string | number };

/** The environment variable that carries a boot setting, e.g. `EBBRT_ALLOCATION_ID` for `allocationId`. */
export function bootVariable(setting: keyof BootSettings): string {
  return `EBBRT_${BOOT_SETTINGS[setting].toUpperCase().replace(/-/g, '_')}`;
}

/** Boot settings as environment variables (`EBBRT_*`); unset settings are left out. */
export function bootEnv(settings: BootSettings): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [setting, value] of Object.entries(settings)) if (value !== undefined) env[bootVariable(setting as keyof BootSettings)] = String(value);
  return env;
}

/**
 * Boot settings and the app's arguments as kernel command line parameters
 * (`ebbrt.<name>=<value>`, values percent-encoded so spaces and quotes cannot
 * split them; `ebbrt.args` a JSON array), read back by {@link parseKernelCmdline}.
 */
export function bootKernelParams(settings: BootSettings, args: readonly string[] = []): string[] {
  const params: string[] = [];
  for (const [setting, value] of Object.entries(settings))
    if (value !== undefined) params.push(`ebbrt.${BOOT_SETTINGS[setting as keyof BootSettings]}=${encodeURIComponent(String(value))}`);
  if (args.length > 0) params.push(`ebbrt.args=${encodeURIComponent(JSON.stringify(args))}`);
  return params;
}

/** Flag → environment variable, for every boot setting. */
const FLAGS: Record<string, string> = Object.fromEntries(
  Object.entries(BOOT_SETTINGS).map(([setting, name]) => [`--${name}`, bootVariable(setting as keyof BootSettings)]),
);
const FLAG_SPECS: FlagSpec[] = Object.values(BOOT_SETTINGS).map((name) => ({ name, type: 'string', help: '' }));

/**
 * Parses `ebbrt.*` parameters of a kernel command line (`/proc/cmdline` in a
 * native VM): `ebbrt.<flag>=<value>` for every flag above (e.g.
 * `ebbrt.frontend=10.0.2.2:4000`), values percent-encoded, and
 * `ebbrt.args=<percent-encoded JSON array>` for the app's arguments. Other
 * parameters belong to the kernel and are ignored.
 */
export function parseKernelCmdline(text: string): { values: Record<string, string>; args?: string[] } {
  const values: Record<string, string> = {};
  let args: string[] | undefined;
  // The kernel splits on spaces outside double quotes and strips the quotes.
  for (const [, raw] of text.matchAll(/((?:"[^"]*"|[^\s"])+)/g)) {
    const param = raw.replace(/"/g, '');
    const eq = param.indexOf('=');
    if (!param.startsWith('ebbrt.') || eq < 0) continue;
    const key = param.slice('ebbrt.'.length, eq);
    let value: string;
    try {
      value = decodeURIComponent(param.slice(eq + 1));
    } catch {
      throw new BootConfigError(`kernel command line parameter ebbrt.${key} is not percent-encoded: encode values with encodeURIComponent`);
    }
    if (key === 'args') {
      const parsed: unknown = (() => {
        try {
          return JSON.parse(value);
        } catch {
          return undefined;
        }
      })();
      if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string'))
        throw new BootConfigError('kernel command line parameter ebbrt.args must be a percent-encoded JSON array of strings');
      args = parsed;
      continue;
    }
    const variable = FLAGS[`--${key}`];
    if (!variable || variable === 'EBBRT_KERNEL_CMDLINE')
      throw new BootConfigError(
        `unknown kernel command line parameter ebbrt.${key}; known: ${Object.keys(FLAGS)
          .filter((f) => f !== '--kernel-cmdline')
          .map((f) => `ebbrt.${f.slice(2)}`)
          .join(', ')}, ebbrt.args`,
      );
    values[variable] = value;
  }
  return { values, args };
}

function parseAddress(what: string, value: string): { host: string; port: number } {
  const match = /^(.+):(\d+)$/.exec(value);
  const port = match ? Number(match[2]) : 0;
  if (!match || port < 1 || port > 65535) throw new BootConfigError(`${what} must be host:port with a port in 1..65535, got "${value}"`);
  return { host: match[1], port };
}

export function parseBootConfig(argv: readonly string[], env: NodeJS.ProcessEnv): BootConfig {
  const values: Record<string, string | undefined> = {};
  for (const variable of Object.values(FLAGS)) values[variable] = env[variable];
  const parsed = parseFlags(argv, FLAG_SPECS, { error: (message) => new BootConfigError(`${message}; known flags: ${Object.keys(FLAGS).join(', ')}`) });
  if (parsed.positionals.length > 0) throw new BootConfigError(`unexpected argument "${parsed.positionals[0]}"; the app's arguments go after --`);
  for (const [name, value] of Object.entries(parsed.flags)) values[FLAGS[`--${name}`]] = value as string;
  let args = parsed.rest;
  if (values.EBBRT_KERNEL_CMDLINE) {
    let text: string;
    try {
      text = readFileSync(values.EBBRT_KERNEL_CMDLINE, 'utf8');
    } catch (error) {
      throw new BootConfigError(`cannot read the kernel command line from ${values.EBBRT_KERNEL_CMDLINE}: ${(error as Error).message}`, { cause: error });
    }
    const kernel = parseKernelCmdline(text);
    for (const [variable, value] of Object.entries(kernel.values)) values[variable] ??= value;
    if (args.length === 0 && kernel.args) args = kernel.args;
  }
  const frontend = values.EBBRT_FRONTEND;
  const match = frontend ? /^(.+):(\d+)$/.exec(frontend) : null;
  if (!match) throw new BootConfigError('the frontend address is missing or malformed: pass --frontend host:port or set EBBRT_FRONTEND');
  const port = Number(match[2]);
  if (port < 1 || port > 65535) throw new BootConfigError(`frontend port ${port} is out of range 1..65535`);
  const delivered = values.EBBRT_SECRETS_FD ? readSecretsFd(values.EBBRT_SECRETS_FD) : {};
  if (delivered.tlsKey) values.EBBRT_TLS_KEY ??= delivered.tlsKey;
  const secret = delivered.secret ?? (values.EBBRT_SECRET_FILE ? readSecretFile(values.EBBRT_SECRET_FILE) : values.EBBRT_SECRET);
  const proof = delivered.joinToken !== undefined ? { joinToken: delivered.joinToken } : secret ? { secret } : undefined;
  if (!proof)
    throw new BootConfigError(
      'the cluster secret is missing: pass --secret-file <file holding it> (or set EBBRT_SECRET_FILE; --secret / EBBRT_SECRET work too but show it to every user of the host)',
    );
  const cores = Number(values.EBBRT_CORES ?? '1');
  if (!Number.isInteger(cores) || cores < 1 || cores > 256) throw new BootConfigError(`cores must be an integer in 1..256, got ${values.EBBRT_CORES}`);
  const tlsParts = [values.EBBRT_TLS_CERT, values.EBBRT_TLS_KEY, values.EBBRT_TLS_CA];
  if (tlsParts.some(Boolean) && !tlsParts.every(Boolean))
    throw new BootConfigError('TLS needs all three of --tls-cert, --tls-key and --tls-ca (or EBBRT_TLS_CERT, EBBRT_TLS_KEY, EBBRT_TLS_CA)');
  const tls = tlsParts.every(Boolean)
    ? { cert: pem('certificate', values.EBBRT_TLS_CERT!), key: pem('key', values.EBBRT_TLS_KEY!), ca: pem('CA certificate', values.EBBRT_TLS_CA!) }
    : undefined;
  const reconnectMs = Number(values.EBBRT_RECONNECT_MS ?? '60000');
  if (!Number.isInteger(reconnectMs) || reconnectMs < 0)
    throw new BootConfigError(
      `reconnect-ms must be a non-negative integer (milliseconds; 0 = exit when the frontend is lost), got ${values.EBBRT_RECONNECT_MS}`,
    );
  const parentFd = values.EBBRT_PARENT_FD === undefined ? undefined : Number(values.EBBRT_PARENT_FD);
  if (parentFd !== undefined && (!Number.isInteger(parentFd) || parentFd < 3))
    throw new BootConfigError(`parent-fd must be the number (3 or more) of a pipe inherited from the launching frontend, got ${values.EBBRT_PARENT_FD}`);
  const coreHeapMb = values.EBBRT_CORE_HEAP_MB === undefined ? undefined : Number(values.EBBRT_CORE_HEAP_MB);
  if (coreHeapMb !== undefined && (!Number.isInteger(coreHeapMb) || coreHeapMb < 16))
    throw new BootConfigError(`core-heap-mb must be an integer of 16 or more (MB of heap per core), got ${values.EBBRT_CORE_HEAP_MB}`);
  const bootTrace = values.EBBRT_BOOT_TRACE ?? '0';
  if (bootTrace !== '0' && bootTrace !== '1') throw new BootConfigError(`boot-trace must be 1 (print the boot timeline) or 0, got "${bootTrace}"`);
  const app = values.EBBRT_APP;
  if (!app) throw new BootConfigError("no app: pass --app <path of the app's native module> or set EBBRT_APP");
  const listenPort = Number(values.EBBRT_LISTEN_PORT ?? '0');
  if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535)
    throw new BootConfigError(`listen port must be an integer in 0..65535, got ${values.EBBRT_LISTEN_PORT}`);
  const hostAlias: Record<string, string> = {};
  for (const pair of (values.EBBRT_HOST_ALIAS ?? '').split(',').filter(Boolean)) {
    const [from, to, extra] = pair.split('=');
    if (!from || !to || extra !== undefined)
      throw new BootConfigError(`host alias must be a comma-separated list of from=to (e.g. 127.0.0.1=10.0.2.2), got "${pair}"`);
    hostAlias[from] = to;
  }
  return {
    frontendHost: match[1],
    frontendPort: port,
    proof,
    allocationId: values.EBBRT_ALLOCATION_ID ?? '',
    cores,
    app,
    listenHost: values.EBBRT_LISTEN_HOST ?? '127.0.0.1',
    listenPort,
    advertise: values.EBBRT_ADVERTISE ? parseAddress('the advertised address', values.EBBRT_ADVERTISE) : undefined,
    hostAlias,
    backend: values.EBBRT_BACKEND ?? 'process',
    services: values.EBBRT_SERVICES,
    args,
    reconnectMs,
    tls,
    parentFd,
    coreHeapMb,
    bootTrace: bootTrace === '1',
  };
}

/**
 * What a launcher hands a native outside its command line and environment: a
 * JSON object on an inherited file descriptor (`EBBRT_SECRETS_FD`, a pipe the
 * launcher writes and closes) or, in a VM, in a QEMU `fw_cfg` file.
 */
export interface BootSecrets {
  /** The cluster secret (a launcher that wants the native to hold it; the frontend's own launchers send a join token). */
  secret?: string;
  /** A one-time join token the frontend minted for this node's allocation (64 hex digits). */
  joinToken?: string;
  /** The messenger's TLS private key (PEM text). */
  tlsKey?: string;
}

/**
 * The QEMU `fw_cfg` file a VM native's {@link BootSecrets} travel in (`-fw_cfg name=…,file=…`); the
 * guest's init hands `/sys/firmware/qemu_fw_cfg/by_name/<name>/raw` to the runtime as its secrets descriptor.
 */
export const FW_CFG_SECRETS = 'opt/ebbrt/secrets';

/** Reads the {@link BootSecrets} a launcher wrote to file descriptor `fdText` (read to its end, then closed). */
function readSecretsFd(fdText: string): BootSecrets {
  const fd = Number(fdText);
  if (!Number.isInteger(fd) || fd < 3) throw new BootConfigError(`secrets-fd must be an inherited file descriptor number (3 or more), got "${fdText}"`);
  let text: string;
  try {
    text = readFileSync(fd, 'utf8');
  } catch (error) {
    throw new BootConfigError(`cannot read the secrets from file descriptor ${fd}: ${(error as Error).message}; the launcher must pass it open`, {
      cause: error,
    });
  } finally {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
  return parseBootSecrets(text, `file descriptor ${fd}`);
}

/** Parses {@link BootSecrets} JSON; `where` names its source in errors. */
export function parseBootSecrets(text: string, where: string): BootSecrets {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new BootConfigError(`the secrets on ${where} are not a JSON object such as {"secret":"…"}`);
  const record = parsed as Record<string, unknown>;
  const out: BootSecrets = {};
  for (const key of ['secret', 'joinToken', 'tlsKey'] as const) {
    const value = record[key];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0) throw new BootConfigError(`the secrets on ${where}: ${key} must be a non-empty string`);
    out[key] = value;
  }
  if (out.joinToken !== undefined && !/^[0-9a-f]{64}$/i.test(out.joinToken))
    throw new BootConfigError(`the secrets on ${where}: joinToken must be the 64 hex digits the frontend minted`);
  return out;
}

/** A secret file holds the secret, optionally followed by a newline. */
function readSecretFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BootConfigError(`cannot read the cluster secret from ${file}: ${(error as Error).message}`, { cause: error });
  }
  const secret = text.replace(/\r?\n$/, '');
  if (!secret) throw new BootConfigError(`the secret file ${file} is empty; write the frontend's cluster secret into it`);
  return secret;
}

/** A TLS setting is PEM text itself, or the path of a PEM file. */
function pem(what: string, value: string): string {
  if (value.startsWith('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
  } catch (error) {
    throw new BootConfigError(`cannot read the TLS ${what} from ${value}: ${(error as Error).message}`, { cause: error });
  }
}
