/**
 * The worker thread behind fitSubmittedOffLoop (fit-thread.ts): fits the lines of one message
 * handed in over submission (line-length.ts) away from the event loop that serves every
 * session, and is then ended.
 */
import { parentPort } from 'node:worker_threads';
import { fitSubmittedLines, UnfitLineError } from './line-length.ts';

/** The message fitted, `unfit`: why it cannot be (UnfitLineError's words), or `error`. */
export interface Fitted {
  message?: Uint8Array;
  unfit?: string;
  error?: string;
}

parentPort!.once('message', ({ message }: { message: Uint8Array }) => {
  try {
    const [fitted] = fitSubmittedLines([Buffer.from(message.buffer, message.byteOffset, message.length)]);
    const own = fitted!.byteOffset === 0 && fitted!.byteLength === fitted!.buffer.byteLength ? fitted! : new Uint8Array(fitted!);
    parentPort!.postMessage({ message: own } satisfies Fitted, [own.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage((err instanceof UnfitLineError ? { unfit: err.message } : { error: (err as Error).message ?? String(err) }) satisfies Fitted);
  }
});
