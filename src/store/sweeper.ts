/**
 * Runs the store's sweep (Store.sweep: what a crash left half-written) once an hour while the
 * server runs, and logs what it removed.
 */
import type { Logger } from '../log.ts';
import type { Service } from '../server.ts';
import type { Store } from './store.ts';

const EVERY_MS = 60 * 60 * 1000;

export class StoreSweeper implements Service {
  readonly name = 'sweeper';
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly store: Store;
  private readonly log: Logger;

  constructor(store: Store, log: Logger) {
    this.store = store;
    this.log = log;
  }

  async start(): Promise<string[]> {
    this.timer = setInterval(() => this.run(), EVERY_MS);
    this.timer.unref();
    return [];
  }

  private run(): void {
    this.running ??= this.store.sweep().then((removed) => {
      if (removed > 0) this.log.info({ removed }, 'store sweep removed leftovers of an interrupted write');
    }, (err: unknown) => {
      this.log.warn({ err }, 'store sweep failed; it runs again in an hour');
    }).finally(() => {
      this.running = undefined;
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
