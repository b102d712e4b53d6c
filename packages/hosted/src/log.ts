/**
 * Structured logs, all through pino: one JSON object per line (pino's
 * format: `level` as a number, `time` in ms, `msg`) with the fields the
 * runtime passes (node id, Ebb id, …) and base fields (cluster name, the
 * frontend's node id).
 */
import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** Options of {@link pinoLogger}. */
export interface PinoLoggerOptions {
  /** Append to this file (created with its folder), else write to stderr. */
  file?: string;
  /** Lowest level written. Default `EBBRT_LOG`, else `info` into a file and `warn` on stderr. */
  level?: LogLevel;
  /** Fields on every line. */
  base?: Record<string, unknown>;
}

/** pino behind the runtime's {@link Logger} interface. Throws `TypeError` for a level (or `EBBRT_LOG`) that is none of debug, info, warn, error. */
export function pinoLogger(options: PinoLoggerOptions = {}): Logger {
  const level = options.level ?? ((process.env.EBBRT_LOG as LogLevel | undefined) || (options.file ? 'info' : 'warn'));
  if (!LEVELS.includes(level)) throw new TypeError(`log level must be debug, info, warn or error, got ${JSON.stringify(level)} (check EBBRT_LOG)`);
  // Synchronous writes: low volume, and nothing is lost when the process exits right after.
  const destination = pino.destination(options.file ? { dest: options.file, mkdir: true, append: true, sync: true } : { dest: 2, sync: true });
  const log = pino({ level, base: { pid: process.pid } }, destination);
  // Base fields merged per line, not as pino bindings: a field of the event (the node it is about) replaces a base
  // field of the same name instead of writing the key twice.
  const base = options.base ?? {};
  return {
    debug: (message, fields) => log.debug({ ...base, ...fields }, message),
    info: (message, fields) => log.info({ ...base, ...fields }, message),
    warn: (message, fields) => log.warn({ ...base, ...fields }, message),
    error: (message, fields) => log.error({ ...base, ...fields }, message),
  };
}

/** Discards everything (tests, embedding programs that log nothing). */
export const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
