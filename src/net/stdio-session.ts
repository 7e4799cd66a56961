/**
 * Drives one sans-I/O session over a pair of streams instead of a socket: `sendmail -bs` speaks
 * SMTP on its standard input and output. Outputs run in order, each effect awaited before the
 * next, and input is read only once the session has answered what came before (RFC 2920 §3.1:
 * replies in the order of the commands). Ends when the session closes or the input ends.
 */
import type { Readable, Writable } from 'node:stream';
import { EMPTY } from './empty.ts';
import type { Output, Session } from './session.ts';

export interface StdioSessionOptions<E, R> {
  session: Session<E, R>;
  perform: (effect: E, session: Session<E, R>) => Promise<R>;
  input: Readable;
  output: Writable;
  /** A refusal the session reports (see Output). */
  refused?: (reason: string) => void;
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
        case 'effect':
          queue.unshift(...o.session.resolve(await o.perform(out.effect, o.session)));
          break;
        case 'more':
          queue.unshift(...o.session.receive(EMPTY));
          break;
        case 'refused':
          o.refused?.(out.reason);
          break;
        case 'starttls':
          // Never offered here: there is no peer to make a TLS session with.
          throw new Error('STARTTLS over standard input and output');
        case 'close':
          return false;
      }
    }
    return true;
  };
  if (!(await run(o.session.start()))) return;
  for await (const chunk of o.input) {
    if (!(await run(o.session.receive(chunk as Buffer)))) return;
  }
}
