/**
 * How many connections the queue runner opens to one destination at once, as Postfix's
 * scheduler does: a slow start that grows while deliveries go well, a ceiling met when the next
 * hop refuses one connection more than it takes (a server with a limit per client address
 * answers 421 at the greeting), and one at a time when no connection can be made at all.
 */

/** Connections a new destination starts with. */
const INITIAL = 5;
/** How long a lowered ceiling holds before a delivery that goes well raises it by one: a limit
 *  of the next hop's can rise, or have been met by other clients' connections, not ours. */
export const CEILING_PROBE_MS = 60_000;
/** A 4xx at the greeting this soon after a delivery went well is the next hop's limit met, not
 *  the destination down: a server may count a connection until its process is reaped, after
 *  its 221, and refuse the one that replaces it. */
const JUST_WENT_WELL_MS = 10_000;
/** How long a destination waits after such a refusal before it opens a connection again. */
export const BUSY_PAUSE_MS = 1_000;

export class DestinationConcurrency {
  /** Connections that may be open now. */
  limit: number;
  /** What the limit may grow to: the configured maximum, or fewer once the next hop refused. */
  private ceiling: number;
  private ceilingSet = 0;
  private lastWentWell = -Infinity;
  private resumeAt = -Infinity;
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
    this.limit = Math.min(INITIAL, max);
    this.ceiling = max;
  }

  /** A connection was refused while `others` to the destination were made or being made: one
   *  too many. Those carry the mail, and no more than they are opened. */
  tooMany(others: number, now: number): void {
    this.ceiling = Math.max(1, others);
    this.ceilingSet = now;
    this.limit = Math.min(this.limit, this.ceiling);
  }

  /** Whether a delivery went well within the last few seconds (see JUST_WENT_WELL_MS). */
  justWentWell(now: number): boolean {
    return now - this.lastWentWell < JUST_WENT_WELL_MS;
  }

  /** No connection is opened for BUSY_PAUSE_MS. */
  pause(now: number): void {
    this.resumeAt = now + BUSY_PAUSE_MS;
  }

  mayOpen(now: number): boolean {
    return now >= this.resumeAt;
  }

  /** No connection could be made, none other being open: the destination is unreachable now. */
  unreachable(): void {
    this.limit = 1;
  }

  /** A delivery went well: one more connection may be opened, and a ceiling lowered
   *  CEILING_PROBE_MS ago or more rises by one. */
  wentWell(now: number): void {
    this.lastWentWell = now;
    if (this.ceiling < this.max && now - this.ceilingSet >= CEILING_PROBE_MS) {
      this.ceiling++;
      this.ceilingSet = now;
    }
    this.limit = Math.min(this.limit + 1, this.ceiling);
  }
}
