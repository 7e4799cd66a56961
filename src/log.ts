/** Structured logs (pino, one JSON object per line on stdout). */
import { pino, type Logger } from 'pino';

/** Logs to stdout (the server) or to stderr (one-shot commands, whose stdout is their output). */
export function createLogger(level: string, fd: 1 | 2 = 1): Logger {
  const destination = pino.destination({ fd, sync: fd === 2 });
  // Output that cannot be written is dropped, as pino itself drops it after EPIPE: a terminal
  // closed under the server (EIO), a full disk under a redirect. Left to the destination, the
  // error would end the process, whose last flush then retries the write for ever.
  destination.on('error', () => {
    destination.write = () => true;
    destination.flush = () => {};
    destination.flushSync = () => {};
    destination.end = () => {};
  });
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

export type { Logger };
