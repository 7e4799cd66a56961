/**
 * The time every connection of the process together may spend on input in one turn of the event
 * loop. libuv accepts one new connection per turn (since its pull request 3696), so the length of
 * a turn is how long a new client waits for each one queued before it: a hundred clients
 * pipelining NOOPs as fast as they could made turns of 100–300 ms, and a new client waited 7 to
 * over 15 seconds for its greeting. Once a turn has spent its budget, input that arrives waits,
 * its socket paused, for a later turn; the waiting go first then, in the order they came.
 */
export class TurnBudget {
  private readonly budgetMs: number;
  private readonly now: () => number;
  /** When this turn began spending, if it has. */
  private began: number | undefined;
  private waiting: (() => void)[] = [];
  private scheduled = false;

  constructor(budgetMs: number, now: () => number = () => performance.now()) {
    this.budgetMs = budgetMs;
    this.now = now;
  }

  /** True once this turn has spent its budget; the first call of a turn starts its clock. */
  spent(): boolean {
    if (this.began === undefined) {
      this.began = this.now();
      // The check phase ends the turn.
      setImmediate(() => { this.began = undefined; });
      return false;
    }
    return this.now() - this.began >= this.budgetMs;
  }

  /** Calls `resume` in a later turn, after those that asked before, within that turn's budget. */
  defer(resume: () => void): void {
    this.waiting.push(resume);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.resumeWaiting);
  }

  private resumeWaiting = (): void => {
    this.scheduled = false;
    const waiting = this.waiting;
    this.waiting = [];
    // Starts this turn's clock, unless input already has; at least one goes on in every turn.
    this.spent();
    let i = 0;
    do waiting[i++]!();
    while (i < waiting.length && !this.spent());
    if (i < waiting.length) {
      this.waiting = [...waiting.slice(i), ...this.waiting];
      this.schedule();
    }
  };
}

/**
 * The process's one budget (see TurnBudget). With 2 ms, a turn with a hundred flooders lasts
 * about 10 ms (with 10 ms, 30), and that is what each reply to a newcomer waits for.
 */
export const inputTurn = new TurnBudget(2);
