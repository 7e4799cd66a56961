/**
 * Runs the store's sweep (Store.sweep: what a crash left half-written, and the body log's dead
 * space) five minutes after start and then once an hour while the server runs, and logs what
 * it removed. The first run comes early so that a server restarted more often than hourly
 * still sweeps.
 */
import type { Logger } from '../log.ts';
import type { Service } from '../server.ts';
import type { Store } from './store.ts';

const FIRST_MS = 5 * 60 * 1000;
const EVERY_MS = 60 * 60 * 1000;

export class StoreSweeper implements Service {
  readonly name = 'sweeper';
  private first: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly store: Store;
  private readonly log: Logger;

  constructor(store: Store, log: Logger) {
    this.store = store;
    this.log = log;
  }

  async start(): Promise<string[]> {
    this.first = setTimeout(() => this.run(), FIRST_MS);
    this.first.unref();
    this.timer = setInterval(() => this.run(), EVERY_MS);
    this.timer.unref();
    return [];
  }

  private run(): void {
    this.running ??= this.store.sweep().then(({ removed, damaged, waiting }) => {
      if (removed > 0) this.log.info({ removed }, 'store sweep removed files no message needs any more');
      if (waiting > 0) this.log.warn({ segments: waiting }, 'store sweep could not move the live mail out of body-log segments mostly holding deleted mail: the disk holding data_dir lacks the room; deleting more mail frees whole segments, or free space on the disk');
      if (damaged.length > 0) this.log.warn({ damaged }, 'store sweep left in place message bodies that no longer match their checksum; reading those messages fails');
    }, (err: unknown) => {
      this.log.warn({ err }, 'store sweep failed; it runs again in an hour');
    }).finally(() => {
      this.running = undefined;
    });
  }

  async stop(): Promise<void> {
    clearTimeout(this.first);
    clearInterval(this.timer);
    await this.running;
  }
}
