/**
 * Fitting a submitted message's long lines (line-length.ts) in a worker thread: its cost grows
 * with the number of lines, and a message of millions of short ones would hold up every session
 * of the server for seconds. Each fit has a thread of its own, one at a time: a message whose
 * fitting passes the thread's heap ends that thread alone and is refused as unfit, and neither
 * the server nor the messages waiting their turn notice. The users take turns: after a fit of
 * one user's message, another's waiting goes first, so that a user who hands in many such
 * messages at once makes another wait for one fit at most, not for all of them.
 */
import { Worker } from 'node:worker_threads';
import { workerUrl } from '../delivery/thread-on-demand.ts';
import type { Fitted } from './line-fit-worker.ts';
import { hasLongLine, UnfitLineError } from './line-length.ts';

const WORKER = workerUrl(import.meta.url, 'line-fit-worker');

/** The heap a fit may take: what the server's own may (V8's default on a 64-bit machine). */
const HEAP_MB = 4096;

/** A fit given up because the server is stopping: the message is not refused, but not taken. */
export class FitAbandoned extends Error {}

interface Fit {
  message: Buffer[];
  heapMb: number;
  resolve: (fitted: Buffer[]) => void;
  reject: (err: unknown) => void;
}

/** The fits waiting, by the user who handed the message in, the users in the order of their
 *  turns. */
const waiting = new Map<string, Fit[]>();
/** The thread of the fit under way, until it has exited (which may be after its answer). */
let running: Worker | undefined;
/** A fit is under way: from its start to its answer. */
let busy = false;
/** Whose message the last fit was. */
let lastOwner: string | undefined;

/** fitSubmittedLines, off the event loop when there is anything to fit, in a heap of `heapMb`,
 *  in the turn of `owner` (the user who handed it in). Throws UnfitLineError, or FitAbandoned
 *  when the server stops first. */
export function fitSubmittedOffLoop(message: Buffer[], owner: string, heapMb = HEAP_MB): Promise<Buffer[]> {
  if (!hasLongLine(message)) return Promise.resolve(message);
  return new Promise((resolve, reject) => {
    const fits = waiting.get(owner);
    if (fits) fits.push({ message, heapMb, resolve, reject });
    else waiting.set(owner, [{ message, heapMb, resolve, reject }]);
    startNext();
  });
}

/** Starts the next fit when none is under way: the first user in turn other than the one just
 *  served, or that one when nobody else waits. */
function startNext(): void {
  if (busy || waiting.size === 0) return;
  const owner = [...waiting.keys()].find((o) => o !== lastOwner) ?? lastOwner!;
  const fits = waiting.get(owner)!;
  const fit = fits.shift()!;
  // Its next message waits behind everyone else's.
  waiting.delete(owner);
  if (fits.length > 0) waiting.set(owner, fits);
  busy = true;
  lastOwner = owner;
  fitInThread(Buffer.concat(fit.message), fit.heapMb).then(fit.resolve, fit.reject).finally(() => {
    busy = false;
    startNext();
  });
}

/** Ends the fit under way and abandons those waiting (at the server's stop, before its store
 *  closes: none of them is stored after). */
export function stopFitting(): void {
  for (const fits of waiting.values()) for (const fit of fits) fit.reject(new FitAbandoned('the server is stopping'));
  waiting.clear();
  void running?.terminate();
}

function fitInThread(message: Buffer, heapMb: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { resourceLimits: { maxOldGenerationSizeMb: heapMb } });
    running = worker;
    let answered = false;
    worker.once('message', (r: Fitted) => {
      answered = true;
      void worker.terminate();
      if (r.error !== undefined) reject(new Error(`fitting the lines failed: ${r.error}`));
      else if (r.unfit !== undefined) reject(new UnfitLineError(r.unfit));
      else resolve([Buffer.from(r.message!.buffer, r.message!.byteOffset, r.message!.byteLength)]);
    });
    worker.once('error', (err) => {
      if (answered) return;
      answered = true;
      reject(new UnfitLineError(`its lines over 998 octets could not be re-encoded here (${err.message}): encode the body (quoted-printable or base64)`));
    });
    worker.once('exit', () => {
      if (running === worker) running = undefined;
      if (answered) return;
      answered = true;
      reject(new FitAbandoned('the server is stopping'));
    });
    // The bytes go to the thread and come back without a copy (moved, in a buffer of their own:
    // a small one shares Node's pool, which must not move).
    const own = message.byteOffset === 0 && message.byteLength === message.buffer.byteLength ? message : new Uint8Array(message);
    worker.postMessage({ message: own }, [own.buffer as ArrayBuffer]);
  });
}
