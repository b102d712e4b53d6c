/**
 * Structured logs: one JSON object per line with level, time, message and
 * fields (node id, Ebb id…). Small on purpose; swap in pino via `logger`.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** JSON lines on stderr at `level` and above (default from `EBBRT_LOG`, else `warn`). */
export function consoleLogger(base: Record<string, unknown> = {}, level: LogLevel = (process.env.EBBRT_LOG as LogLevel) || 'warn'): Logger {
  const min = ORDER[level] ?? ORDER.warn;
  const emit = (lvl: LogLevel) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    process.stderr.write(`${JSON.stringify({ level: lvl, time: new Date().toISOString(), ...base, msg: message, ...fields })}\n`);
  };
  return { debug: emit('debug'), info: emit('info'), warn: emit('warn'), error: emit('error') };
}

/** Discards everything (tests). */
export const silentLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
