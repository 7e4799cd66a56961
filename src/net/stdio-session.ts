/**
 * Drives one sans-I/O session over a pair of streams instead of a socket: `sendmail -bs` speaks
 * SMTP on its standard input and output. Outputs run in order, each effect awaited before the
 * next, and input is read only once the session has answered what came before (RFC 2920 §3.1:
 * replies in the order of the commands). Ends when the session closes, the input ends, or no
 * input comes for `idleMs` (the session's own farewell then, as on a socket). An exception in an
 * effect gets the session's failure reply (421) before it is thrown on.
 */
import type { Readable, Writable } from 'node:stream';
import { EMPTY } from './empty.ts';
import type { Output, Session } from './session.ts';

export interface StdioSessionOptions<E, R> {
  session: Session<E, R>;
  perform: (effect: E, session: Session<E, R>) => Promise<R>;
  input: Readable;
  output: Writable;
  idleMs: number;
  /** Take a bare LF for CRLF, as Postfix's smtpd does for `sendmail -bs`: a local program that
   *  speaks SMTP with printf's "\n" (no next hop reads this input, so no smuggling either). */
  lfIsLineEnd?: boolean;
}

/** Puts a CR before each LF that has none, across chunk boundaries. */
function crlfLines(): (chunk: Buffer) => Buffer {
  const CR = Buffer.from('\r');
  let afterCR = false;
  return (chunk) => {
    const parts: Buffer[] = [];
    let start = 0;
    for (let lf = chunk.indexOf(0x0a); lf >= 0; lf = chunk.indexOf(0x0a, lf + 1)) {
      if (lf > 0 ? chunk[lf - 1] === 0x0d : afterCR) continue;
      parts.push(chunk.subarray(start, lf), CR);
      start = lf;
    }
    if (chunk.length > 0) afterCR = chunk[chunk.length - 1] === 0x0d;
    if (parts.length === 0) return chunk;
    parts.push(chunk.subarray(start));
    return Buffer.concat(parts);
  };
}

export async function runStdioSession<E, R>(o: StdioSessionOptions<E, R>): Promise<void> {
  const write = (data: string | Buffer): Promise<void> => new Promise((resolve, reject) => {
    o.output.write(data, (err) => (err ? reject(err) : resolve()));
  });
  /** Runs outputs in order; false once the session has closed. */
  const run = async (outputs: Output<E>[]): Promise<boolean> => {
    const queue = [...outputs];
    while (queue.length > 0) {
      const out = queue.shift()!;
      switch (out.type) {
        case 'write':
          for (const piece of Array.isArray(out.data) ? out.data : [out.data]) await write(piece);
          break;
        case 'stream':
          for await (const chunk of out.source) for (const piece of Array.isArray(chunk) ? chunk : [chunk]) await write(piece);
          break;
        case 'effect': {
          let result: R;
          try {
            result = await o.perform(out.effect, o.session);
          } catch (err) {
            await run(o.session.failure()).catch(() => false);
            throw err;
          }
          queue.unshift(...o.session.resolve(result));
          break;
        }
        case 'more':
          queue.unshift(...o.session.receive(EMPTY));
          break;
        case 'starttls':
          // Never offered here: there is no peer to make a TLS session with.
          throw new Error('STARTTLS over standard input and output');
        case 'refused':
          // Counted by a server's listeners; a command has no metrics to keep.
          break;
        case 'close':
          return false;
      }
    }
    return true;
  };
  if (!(await run(o.session.start()))) return;
  const lines = o.lfIsLineEnd ? crlfLines() : (chunk: Buffer) => chunk;
  const chunks = o.input[Symbol.asyncIterator]();
  for (;;) {
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<'idle'>((resolve) => { timer = setTimeout(() => resolve('idle'), o.idleMs); });
    const next = await Promise.race([chunks.next(), idle]);
    clearTimeout(timer);
    // Done with the input: it is closed, or a read still pending would keep the process alive
    // as long as the caller keeps its end open.
    if (next === 'idle') {
      await run(o.session.timeout());
      o.input.destroy();
      return;
    }
    if (next.done) return;
    if (!(await run(o.session.receive(lines(next.value as Buffer))))) {
      o.input.destroy();
      return;
    }
  }
}
