/**
 * The maildrop as one session sees it: fixed when the session enters the TRANSACTION state
 * (mail arriving meanwhile shows up in the next session), numbered from 1, with deletion marks
 * that only the UPDATE state turns into real deletions (RFC 1939 §5, §6).
 */
import type { MailboxEntry } from '../store/store.ts';

export type Lookup =
  | { ok: true; entry: MailboxEntry }
  | { ok: false; reason: string };

export class Maildrop {
  private readonly entries: readonly MailboxEntry[];
  private readonly deleted: boolean[];
  private deletedCount = 0;
  private deletedOctets = 0;
  private readonly totalOctets: number;

  constructor(entries: readonly MailboxEntry[]) {
    this.entries = entries;
    this.deleted = new Array<boolean>(entries.length).fill(false);
    this.totalOctets = entries.reduce((n, e) => n + e.size, 0);
  }

  /** Messages not marked as deleted (RFC 1939 STAT counts only these). */
  get count(): number {
    return this.entries.length - this.deletedCount;
  }

  get octets(): number {
    return this.totalOctets - this.deletedOctets;
  }

  /** Every message number, including deleted ones (numbers never shift within a session). */
  get size(): number {
    return this.entries.length;
  }

  isDeleted(n: number): boolean {
    return this.deleted[n - 1] === true;
  }

  entry(n: number): MailboxEntry {
    return this.entries[n - 1]!;
  }

  /** A message number from the client: must exist and not be marked as deleted. */
  lookup(n: number): Lookup {
    if (!Number.isSafeInteger(n) || n < 1 || n > this.entries.length) return { ok: false, reason: `no such message, only ${this.entries.length} in maildrop` };
    if (this.deleted[n - 1]) return { ok: false, reason: `message ${n} already deleted` };
    return { ok: true, entry: this.entries[n - 1]! };
  }

  markDeleted(n: number): void {
    if (this.deleted[n - 1]) return;
    this.deleted[n - 1] = true;
    this.deletedCount++;
    this.deletedOctets += this.entries[n - 1]!.size;
  }

  /** RSET: unmark every message. */
  reset(): void {
    this.deleted.fill(false);
    this.deletedCount = 0;
    this.deletedOctets = 0;
  }

  /** Store uids of the messages marked as deleted. */
  deletedUids(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.entries.length; i++) if (this.deleted[i]) out.push(this.entries[i]!.uid);
    return out;
  }
}

/**
 * RFC 1939 §7 UIDL: a unique-id of 1 to 70 characters in 0x21-0x7E, the same for a message in
 * every session and never given to another message of the mailbox. The store's per-mailbox
 * uid is never reused after a deletion, so its decimal form is exactly that.
 */
export function uniqueId(entry: MailboxEntry): string {
  return String(entry.uid);
}
