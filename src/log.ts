/** Structured logs (pino, one JSON object per line on stdout). */
import { pino, type Logger } from 'pino';

/** Logs to stdout (the server) or to stderr (one-shot commands, whose stdout is their output). */
export function createLogger(level: string, fd: 1 | 2 = 1): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd, sync: fd === 2 }));
}

export type { Logger };
