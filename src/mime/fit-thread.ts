/**
 * Fitting a submitted message's long lines (line-length.ts) in a worker thread: its cost grows
 * with the number of lines, and a message of millions of short ones would hold up every session
 * of the server for seconds. The thread's heap is bounded: a message whose fitting would pass it
 * is refused as unfit, and the server goes on.
 */
import { ThreadOnDemand } from '../delivery/thread-on-demand.ts';
import type { FitRequest, Fitted } from './line-fit-worker.ts';
import { hasLongLine, UnfitLineError } from './line-length.ts';

const fitThread = new ThreadOnDemand<Omit<FitRequest, 'id'>, Fitted>(import.meta.url, 'line-fit-worker', 'fitting the lines', undefined, { maxOldGenerationSizeMb: 4096 });

/** fitSubmittedLines, off the event loop when there is anything to fit. Throws UnfitLineError. */
export async function fitSubmittedOffLoop(message: Buffer[]): Promise<Buffer[]> {
  if (!hasLongLine(message)) return message;
  let fitted: Fitted;
  try {
    fitted = await fitThread.request({ message: Buffer.concat(message) });
  } catch (err) {
    throw new UnfitLineError(`its lines over 998 octets could not be re-encoded here (${(err as Error).message}): encode the body (quoted-printable or base64)`);
  }
  if (fitted.unfit !== undefined) throw new UnfitLineError(fitted.unfit);
  const m = fitted.message!;
  return [Buffer.from(m.buffer, m.byteOffset, m.byteLength)];
}
