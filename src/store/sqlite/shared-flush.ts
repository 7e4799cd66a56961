/**
 * One flush (an fsync) shared by everyone who asks while it runs: the group commit's rule, in one
 * place. `flush()` resolves once a flush that *started after the call* has completed, because the
 * one running may have begun before the caller's write reached the file.
 */
export class SharedFlush {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private readonly run: () => Promise<void>;
  private readonly onFailure: ((err: Error) => void) | undefined;

  /**
   * `onFailure`: when given, a flush that fails is handed to it and never settles, nor does any
   * flush after it. After a failed fsync nobody knows what reached the disk, and the system may
   * not say so again: a later fsync can succeed without the lost pages (PostgreSQL stops on the
   * same grounds). Without it, the failure is the flush's rejection.
   */
  constructor(run: () => Promise<void>, onFailure?: (err: Error) => void) {
    this.run = run;
    this.onFailure = onFailure;
  }

  /** True while a flush is under way. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Resolves when the flush under way now has ended (at once if none is). */
  async settled(): Promise<void> {
    await this.running?.catch(() => {});
  }

  /** Resolves once everything written before the call is flushed. */
  flush(): Promise<void> {
    if (!this.running) return this.start();
    this.next ??= this.running.then(() => this.startNext(), () => this.startNext());
    return this.next;
  }

  private startNext(): Promise<void> {
    this.next = undefined;
    return this.start();
  }

  private start(): Promise<void> {
    const p = this.run().catch((err: unknown) => {
      if (!this.onFailure) throw err;
      this.onFailure(err instanceof Error ? err : new Error(String(err)));
      return new Promise<void>(() => {});
    }).finally(() => {
      if (this.running === p) this.running = undefined;
    });
    this.running = p;
    return p;
  }
}
