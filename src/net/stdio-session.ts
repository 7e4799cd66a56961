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
  /** Take a bare LF, and a bare CR, for CRLF, as Postfix's smtpd takes a bare LF for `sendmail
   *  -bs` and as the sendmail command reads a progress bar's CR: a local program that speaks SMTP
   *  with printf's "\n" (no next hop reads this input, so no smuggling either). The session is
   *  then one that offers no CHUNKING, whose chunks are counted in octets. */
  lineEndsAsWritten?: boolean;
}

const CR = Buffer.from('\r');
const CRLF = Buffer.from('\r\n');

/** Each bare LF and bare CR made CRLF, across chunk boundaries: a CR that ends a chunk waits for
 *  the next one (or the end) to tell whether an LF follows. */
function crlfLines(): { next(chunk: Buffer): Buffer; end(): Buffer } {
  let heldCR = false;
  return {
    next(chunk) {
      const input = heldCR ? Buffer.concat([CR, chunk]) : chunk;
      heldCR = input.length > 0 && input[input.length - 1] === 0x0d;
      const text = heldCR ? input.subarray(0, -1) : input;
      const parts: Buffer[] = [];
      let kept = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (c === 0x0d && text[i + 1] === 0x0a) i++;
        else if (c === 0x0d || c === 0x0a) {
          parts.push(text.subarray(kept, i), CRLF);
          kept = i + 1;
        }
      }
      if (parts.length === 0) return text;
      parts.push(text.subarray(kept));
      return Buffer.concat(parts);
    },
    end: () => (heldCR ? CRLF : EMPTY),
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
  const lines = o.lineEndsAsWritten ? crlfLines() : { next: (chunk: Buffer) => chunk, end: () => EMPTY };
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
    if (next.done) {
      // A CR held back at the very end is a line end too.
      const last = lines.end();
      if (last.length > 0) await run(o.session.receive(last));
      return;
    }
    if (!(await run(o.session.receive(lines.next(next.value as Buffer))))) {
      o.input.destroy();
      return;
    }
  }
}
