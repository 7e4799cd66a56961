/**
 * A worker thread for CPU work kept off the event loop that serves every session (DKIM signing,
 * the inbound checks): started on first use, ended after a quiet spell (a thread costs ~35 MB),
 * and never keeping the process alive by itself.
 *
 * Requests go as `{ id, ...payload }`; the thread answers each with `{ id, error }` or
 * `{ id, ...result }`. Anything else it posts (a question of its own, such as a DNS lookup) goes
 * to `onOther`, with the thread to answer on.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

/** A worker's script, `script` (its file name without extension) beside `base`
 *  (import.meta.url), run compiled (.js) or not (.ts) as `base` is. */
export function workerUrl(base: string, script: string): URL {
  return new URL(`./${script}${path.extname(fileURLToPath(base))}`, base);
}

/** Threads that have had nothing to do for this long are ended. */
const IDLE_MS = 30_000;

/** A thread's answer to a request: the result, or `error` (then nothing else). */
export interface ThreadReply {
  id: number;
  error?: string | undefined;
}

export class ThreadOnDemand<Req extends object, Res extends ThreadReply> {
  private readonly url: URL;
  private readonly onOther: ((message: unknown, thread: Worker) => void) | undefined;
  private readonly what: string;
  private thread: Worker | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private waiting = new Map<number, { resolve: (r: Res) => void; reject: (e: Error) => void }>();

  /** `script`: the worker's file name without extension, beside `base` (import.meta.url), run
   *  compiled (.js) or not (.ts) like it; `what`: what it does, for its errors. */
  constructor(base: string, script: string, what: string, onOther?: (message: unknown, thread: Worker) => void) {
    this.url = workerUrl(base, script);
    this.what = what;
    this.onOther = onOther;
  }

  request(payload: Req, transfer: ArrayBuffer[] = []): Promise<Res> {
    clearTimeout(this.idleTimer);
    const thread = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (this.waiting.size === 1) thread.ref();
      thread.postMessage({ ...payload, id }, transfer);
    });
  }

  private start(): Worker {
    if (this.thread) return this.thread;
    const thread = new Worker(this.url);
    thread.unref();
    // Each thread answers for its own requests, even after a newer thread has taken over.
    const waiting: typeof this.waiting = new Map();
    this.waiting = waiting;
    thread.on('message', (r: Res) => {
      const w = typeof r === 'object' && r !== null && 'id' in r ? waiting.get(r.id) : undefined;
      if (!w) {
        this.onOther?.(r, thread);
        return;
      }
      waiting.delete(r.id);
      if (waiting.size === 0) {
        thread.unref();
        this.idleTimer = setTimeout(() => this.close(), IDLE_MS).unref();
      }
      if (r.error !== undefined) w.reject(new Error(`${this.what} failed: ${r.error}`));
      else w.resolve(r);
    });
    const fail = (err: Error) => {
      if (this.thread === thread) this.thread = undefined;
      for (const w of waiting.values()) w.reject(err);
      waiting.clear();
    };
    thread.on('error', fail);
    thread.on('exit', (code) => fail(new Error(`${this.what} thread ended (${code})`)));
    this.thread = thread;
    return thread;
  }

  close(): void {
    clearTimeout(this.idleTimer);
    void this.thread?.terminate();
    this.thread = undefined;
  }
}
