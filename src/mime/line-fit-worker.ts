/**
 * The worker thread behind fitSubmittedOffLoop (fit-thread.ts): fits the lines of a message
 * handed in over submission (line-length.ts) away from the event loop that serves every
 * session, for a message of millions of short lines and a long one takes seconds to re-encode.
 */
import { parentPort } from 'node:worker_threads';
import { fitSubmittedLines, UnfitLineError } from './line-length.ts';

export interface FitRequest {
  id: number;
  message: Uint8Array;
}

/** The message fitted, or `unfit`: why it cannot be (UnfitLineError's words). */
export interface Fitted {
  id: number;
  message?: Uint8Array;
  unfit?: string;
  error?: undefined;
}

export type FitResponse = Fitted | { id: number; error: string };

parentPort!.on('message', (req: FitRequest) => {
  let response: FitResponse;
  try {
    const [fitted] = fitSubmittedLines([Buffer.from(req.message.buffer, req.message.byteOffset, req.message.length)]);
    response = { id: req.id, message: fitted! };
  } catch (err) {
    response = err instanceof UnfitLineError ? { id: req.id, unfit: err.message } : { id: req.id, error: (err as Error).message ?? String(err) };
  }
  parentPort!.postMessage(response);
});
