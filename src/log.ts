/** Structured logs (pino, one JSON object per line on stdout). */
import { pino, type Logger } from 'pino';

/** The output is gone for good: a terminal closed under the server, a reader that left. */
const GONE = new Set(['EIO', 'EPIPE', 'EBADF']);

/** Logs to stdout (the server) or to stderr (one-shot commands, whose stdout is their output). */
export function createLogger(level: string, fd: 1 | 2 = 1): Logger {
  const destination = pino.destination({ fd, sync: fd === 2 });
  // Left to the destination, a write error would end the process, whose last flush then retries
  // for ever. Output that is gone for good is dropped from then on, as pino itself does after
  // EPIPE; after any other error (a full disk under a redirect) the lines that failed are lost
  // and later ones are tried, but the flush at exit no longer waits for them.
  destination.on('error', (err: NodeJS.ErrnoException) => {
    destination.flushSync = () => {};
    if (!GONE.has(err.code ?? '')) return;
    destination.write = () => true;
    destination.flush = () => {};
    destination.end = () => {};
  });
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

export type { Logger };
