import bunyan from 'bunyan';
import { Writable } from 'node:stream';

/**
 * The logging interface the rest of cutover depends on. bunyan satisfies it; keeping our own
 * small type means a swap (e.g. to pino) touches only this file.
 */
export interface Logger {
  trace(fields: object, msg?: string, ...args: unknown[]): void;
  trace(msg: string, ...args: unknown[]): void;
  debug(fields: object, msg?: string, ...args: unknown[]): void;
  debug(msg: string, ...args: unknown[]): void;
  info(fields: object, msg?: string, ...args: unknown[]): void;
  info(msg: string, ...args: unknown[]): void;
  warn(fields: object, msg?: string, ...args: unknown[]): void;
  warn(msg: string, ...args: unknown[]): void;
  error(fields: object, msg?: string, ...args: unknown[]): void;
  error(msg: string, ...args: unknown[]): void;
  fatal(fields: object, msg?: string, ...args: unknown[]): void;
  fatal(msg: string, ...args: unknown[]): void;
  /** `simple`: the fields are plain values that no serializer rewrites (bunyan's fast path for a child per request). */
  child(fields: Record<string, unknown>, simple?: boolean): Logger;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/** Field names whose values are never written to the log, wherever they appear. */
const SECRET_FIELDS = new Set(['password', 'secret', 'authorization', 'token', 'apikey', 'api_key', 'signature', 'cookie']);

/** Replaces values of secret-looking fields so a careless log call cannot leak credentials. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = SECRET_FIELDS.has(k.toLowerCase()) ? '[redacted]' : redact(v, depth + 1);
  }
  return out;
}

export function createLogger(options: { level: LogLevel; name?: string; stream?: NodeJS.WritableStream }): Logger {
  return bunyan.createLogger({
    name: options.name ?? 'cutover',
    level: options.level,
    stream: options.stream ?? process.stdout,
    serializers: {
      err: bunyan.stdSerializers.err,
      req: (req: unknown) => redact(req),
      headers: (h: unknown) => redact(h),
    },
  }) as unknown as Logger;
}

/** A logger that keeps its records in memory; tests use it to assert on what was logged. */
export function createMemoryLogger(level: LogLevel = 'trace'): { logger: Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim()) records.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  return { logger: createLogger({ level, stream }), records };
}

/** A logger that drops everything. */
export function createSilentLogger(): Logger {
  return createLogger({ level: 'fatal', stream: new Writable({ write: (_c, _e, cb) => cb() }) });
}

/**
 * Whether `log` writes lines of `level` (bunyan answers a call without arguments), so a hot path
 * can skip building fields nobody reads; true when the logger cannot tell.
 */
export function logsAt(log: Logger, level: LogLevel): boolean {
  return (log[level] as unknown as () => unknown).call(log) !== false;
}
