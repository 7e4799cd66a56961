/** Structured logs (pino, one JSON object per line on stdout). */
import { pino, type Logger } from 'pino';
import { TURNING_MARKS } from './ascii.ts';

/** The output is gone for good: a terminal closed under the server, a reader that left. */
const GONE = new Set(['EIO', 'EPIPE', 'EBADF']);

/** Logs to stdout (the server) or to stderr (one-shot commands, whose stdout is their output). */
export function createLogger(level: string, fd: 1 | 2 = 1): Logger {
  // The server's lines are written a few KiB at a time, and at least every 100 ms: one write
  // per line (two per message at info) goes through libuv's thread pool beside the message
  // store's own writes, and took a sixth to a quarter of the rate of 20 busy sessions.
  const destination = fd === 2 ? pino.destination({ fd, sync: true }) : pino.destination({ fd, sync: false, minLength: 4096, periodicFlush: 100 });
  // Left to the destination, a write error would end the process, whose last flush then retries
  // for ever. Output that is gone for good is dropped from then on, as pino itself does after
  // EPIPE; after any other error (a full disk under a redirect) the lines that failed are lost
  // and later ones are tried, but the flush at exit no longer waits for them.
  destination.on('error', (err: NodeJS.ErrnoException) => {
    destination.flushSync = () => {};
    if (!GONE.has(err.code ?? '')) return;
    destination.write = () => true;
    // (A caller waiting for the lines to be out, to exit, goes on at once: none will be.)
    destination.flush = (cb?: (err?: Error) => unknown) => { cb?.(); };
    destination.end = () => {};
  });
  // At exit pino writes out what is left at once (flushSync). Behind a write the reader has not
  // taken (a pipe nobody reads, a terminal paused with Ctrl-S), that would hold the process in
  // write(2) for as long as the reader pleased: what is left then goes unwritten.
  const flushSync = destination.flushSync.bind(destination);
  destination.flushSync = () => {
    if (!(destination as unknown as { _writing: boolean })._writing) flushSync();
  };
  // Every string a line holds is made printable there: much of it is a client's (an address,
  // a HELO name, a login, a next hop's reply), in more lines than any list of them would keep.
  const logger = pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { log: (fields) => printableFields(fields) as Record<string, unknown> } }, destination);
  destinations.set(logger, destination);
  return logger;
}

const destinations = new WeakMap<Logger, { on(event: 'write', listener: () => void): unknown }>();

/**
 * Calls `giveUp` when the logger's reader has taken nothing for `stallMs` (a pipe nobody reads,
 * a terminal paused with Ctrl-S), however long a slow one takes with the rest: the process is
 * then ended without what is left. The timer does not keep the process alive.
 */
export function whenLogStalls(log: Logger, stallMs: number, giveUp: () => void): void {
  const timer = setTimeout(giveUp, stallMs).unref();
  destinations.get(log)?.on('write', () => timer.refresh());
}

/** A line's fields with their strings made printable, in plain objects and arrays at any depth
 *  (an Error is left to pino's serializer). */
function printableFields(value: unknown): unknown {
  if (typeof value === 'string') return printable(value);
  if (Array.isArray(value)) return value.map(printableFields);
  if (value !== null && typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, printableFields(v)]));
  }
  return value;
}

const ESCAPED = new RegExp(`[\\\\\\u0080-\\u009f${TURNING_MARKS}]`, 'g');

/** Text a client chose (an address under SMTPUTF8), as a log line may hold it: JSON escapes
 *  C0 controls only, and C1 controls, line and paragraph separators and the marks that turn
 *  text around would reach a terminal or a journal as they are (journalctl shows a line with
 *  C1 controls as a blob, and U+202E shows text backwards). Each is written as \u{XXXX}. */
function printable(text: string): string {
  // A backslash is doubled, so that no text can pass for an escape.
  return text.replace(ESCAPED, (c) => (c === '\\' ? '\\\\' : `\\u{${c.charCodeAt(0).toString(16).padStart(4, '0')}}`));
}

export type { Logger };
