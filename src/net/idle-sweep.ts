/**
 * The idle limit of every connection of a listener, kept by one timer instead of one per socket.
 * A Node socket timeout is a timer object re-armed on every read and write: for 10,000 idle
 * connections the server held 4–8 MiB more with them (paired runs). Here a connection notes the
 * sweep's tick at each activity, and a sweep every `step` ms ends those idle for the whole limit:
 * a connection times out between `timeoutMs` and `timeoutMs + step` after its last activity.
 *
 * The sweep allocates nothing (small-integer ticks, an array walked by index): in a server at
 * rest any steady allocation would fill the young generation V8 grew for the connections' burst,
 * and that is most of their memory. The timer runs only while there are connections.
 */
export interface IdleMember {
  /** The sweep's tick at the last activity; undefined during a wait that has its own limit. */
  readonly lastActive: number | undefined;
  /** Idle for the whole limit: the member decides what that means, and notes it as activity. */
  timedOut(): void;
}

export class IdleSweep {
  readonly timeoutMs: number;
  /** Counts sweeps; a member's `lastActive` is a value of it. */
  tick = 0;
  private readonly step: number;
  /** Ticks of silence that make certain `timeoutMs` have passed. */
  private readonly limit: number;
  private readonly members: IdleMember[] = [];
  private readonly index = new Map<IdleMember, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number) {
    this.timeoutMs = timeoutMs;
    this.step = Math.min(1000, Math.max(10, Math.floor(timeoutMs / 10)));
    // Activity at tick t happened at most one step after the tick began.
    this.limit = Math.ceil(timeoutMs / this.step) + 1;
  }

  add(m: IdleMember): void {
    if (this.index.has(m)) return;
    this.index.set(m, this.members.length);
    this.members.push(m);
    if (!this.timer) {
      this.timer = setInterval(() => this.sweep(), this.step);
      this.timer.unref();
    }
  }

  delete(m: IdleMember): void {
    const i = this.index.get(m);
    if (i === undefined) return;
    this.index.delete(m);
    const last = this.members.pop()!;
    if (last !== m) {
      this.members[i] = last;
      this.index.set(last, i);
    }
    if (this.members.length === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private sweep(): void {
    const tick = ++this.tick;
    // Backwards, so that a member leaving during its timedOut() moves none not yet seen.
    for (let i = this.members.length - 1; i >= 0; i--) {
      const m = this.members[i]!;
      const last = m.lastActive;
      if (last !== undefined && tick - last >= this.limit) m.timedOut();
    }
  }
}
