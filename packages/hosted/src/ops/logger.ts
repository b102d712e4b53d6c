/**
 * pino behind the runtime's {@link Logger} interface: one JSON object per
 * line (pino's format: `level` as a number, `time` in ms, `msg`) with the
 * fields the runtime passes (node id, Ebb id, …) and the base fields given
 * here (cluster name, the frontend's node id).
 */
import { pino } from 'pino';
import type { Logger, LogLevel } from '../log.js';

/** Options of {@link pinoLogger}. */
export interface PinoLoggerOptions {
  /** Append to this file (created with its folder), else write to stderr. */
  file?: string;
  /** Lowest level written. Default `EBBRT_LOG`, else `info`. */
  level?: LogLevel;
  /** Fields on every line. */
  base?: Record<string, unknown>;
}

export function pinoLogger(options: PinoLoggerOptions = {}): Logger {
  const level = options.level ?? ((process.env.EBBRT_LOG as LogLevel | undefined) || 'info');
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new TypeError(`log level must be debug, info, warn or error, got ${JSON.stringify(level)} (check EBBRT_LOG)`);
  // Synchronous writes: low volume, and nothing is lost when the process exits right after.
  const destination = pino.destination(options.file ? { dest: options.file, mkdir: true, append: true, sync: true } : { dest: 2, sync: true });
  const log = pino({ level, base: { pid: process.pid, ...options.base } }, destination);
  return {
    debug: (message, fields) => log.debug(fields ?? {}, message),
    info: (message, fields) => log.info(fields ?? {}, message),
    warn: (message, fields) => log.warn(fields ?? {}, message),
    error: (message, fields) => log.error(fields ?? {}, message),
  };
}
