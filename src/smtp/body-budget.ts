/**
 * Octets of messages that SMTP sessions hold in memory from their first octet until they are
 * stored (a message is written to disk whole, once its end is in and it is checked), bounded for
 * the whole process and for each client
 * address (an IPv6 one by its /64: see clientKey). Without a bound, fifty connections from one
 * address, each in the middle of a message near `limits.max_message_size` and sending a byte
 * now and then, held 1.3 GB for as long as they liked; a few addresses more and the system
 * kills the server for its memory.
 *
 * The server keeps two: a quarter of the machine's memory for mail from anyone, and an eighth
 * for its authenticated users', so that strangers holding theirs full (four addresses, on a
 * machine of 1 GiB) cannot stop the users' own mail going out: three eighths in all, at most.
 *
 * A message that would pass either bound is read on without being kept, and refused at its end
 * with 452 4.3.1: a temporary failure, which the sender tries again later (the session decides;
 * see MessageSink). Nothing here does I/O: a session takes and gives back octets as it goes.
 */
import { ClientCounts } from '../net/client-counts.ts';

export class BodyBudget {
  readonly total: number;
  readonly perClient: number;
  private held = 0;
  private readonly byClient = new ClientCounts();

  constructor(total: number, perClient: number) {
    this.total = total;
    this.perClient = perClient;
  }

  /**
   * The bounds for a server whose messages may be `maxMessageSize` octets: `share` of the
   * machine's `memory` in all (two messages of the largest size at least), and a quarter of that
   * for one address (one such message at least).
   */
  static forServer(maxMessageSize: number, memory: number, share: number): BodyBudget {
    const total = Math.max(2 * maxMessageSize, Math.floor(memory * share));
    return new BodyBudget(total, Math.max(maxMessageSize, Math.floor(total / 4)));
  }

  /** Octets held now, in all. */
  get inUse(): number {
    return this.held;
  }

  /** A lease for one message from `client`. */
  lease(client: string): BodyLease {
    return new BodyLease(this, client);
  }

  /** Takes `n` octets for `client`; false, and nothing taken, when a bound would be passed. */
  take(client: string, n: number): boolean {
    if (this.held + n > this.total || this.byClient.of(client) + n > this.perClient) return false;
    this.held += n;
    this.byClient.add(client, n);
    return true;
  }

  give(client: string, n: number): void {
    this.byClient.remove(client, n);
    this.held -= n;
  }
}

/** What one message holds of the budget; `release` gives it all back (and may be called again). */
export class BodyLease {
  private readonly budget: BodyBudget;
  private readonly client: string;
  private held = 0;

  constructor(budget: BodyBudget, client: string) {
    this.budget = budget;
    this.client = client;
  }

  take(n: number): boolean {
    if (!this.budget.take(this.client, n)) return false;
    this.held += n;
    return true;
  }

  release(): void {
    if (this.held === 0) return;
    this.budget.give(this.client, this.held);
    this.held = 0;
  }
}
