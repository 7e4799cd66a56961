/**
 * The Store: everything mailnest keeps. Protocol code and delivery talk to this interface
 * only; `sqlite/` is the embedded implementation, a PostgreSQL one can fill it later.
 *
 * A stored message is `prefix + body`: the body (the bytes exactly as received) is kept once
 * however many mailboxes and outbound entries refer to it; the prefix holds the trace headers
 * that differ per copy (Return-Path for a local mailbox, DKIM-Signature for a relayed copy).
 */

import { aLabels, isAscii } from '../ascii.ts';

export interface UserRecord {
  id: number;
  /** The address as it was created (case preserved). */
  address: string;
  passwordHash: string;
}

export interface UserUsage {
  address: string;
  messages: number;
  bytes: number;
}

export interface AliasRecord {
  alias: string;
  targets: string[];
}

/** A domain's MTA-STS policy as fetched (RFC 8461 §3.2), with the id of the TXT record that
 *  named it (§3.1) and when it was fetched (ms): it stands for max_age seconds from then. */
export interface StsPolicy {
  domain: string;
  id: string;
  mode: 'enforce' | 'testing' | 'none';
  mx: string[];
  maxAge: number;
  fetched: number;
}

/** DSN parameters from MAIL FROM (RFC 3461 §4.3, §4.4). */
export interface DsnEnvelope {
  ret?: 'FULL' | 'HDRS';
  envid?: string;
}

/** DSN parameters from RCPT TO (RFC 3461 §4.1, §4.2). */
export interface DsnRecipient {
  notify?: ('NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY')[];
  orcpt?: string;
}

export interface OutboundRecipient extends DsnRecipient {
  address: string;
}

/** One accepted message and everything it must become, committed together or not at all. */
export interface Acceptance {
  /** The queue id (see queue-id.ts), chosen before commit so trace headers can name it. */
  id: string;
  /** Message body chunks, exactly as received. */
  body: Buffer[];
  /** Envelope sender ('' for the null sender). */
  sender: string;
  dsn?: DsnEnvelope;
  /** Local copies: one per user id, each with its own prefix (Return-Path, Received). */
  local: { userId: number; prefix: Buffer }[];
  /**
   * Copies for the outbound queue (non-local recipients), one prefix for all of them. `sign`:
   * the message was written here, so it may carry mailnest's DKIM signature (see QueueEntry).
   */
  outbound?: { prefix: Buffer; recipients: OutboundRecipient[]; sign: boolean };
  /** This message is a delivery status report on these recipients of that queue entry: they owe
   *  it no more, in the same transaction, so that the report goes once (see reportsSent). */
  reportOn?: ReportOn;
  /** The user who sent it over submission: its outbound recipients are counted (sentInLastDay). */
  sentBy?: number;
}

/** The recipients of a queue entry that a report is about. */
export interface ReportOn {
  queueId: string;
  recipientIds: number[];
}

export interface MailboxEntry {
  uid: number;
  /** Octets of prefix + body as stored (CRLF line ends). */
  size: number;
  receivedAt: number;
}

/**
 * A stored message opened for reading. A small message comes whole in `head`; a large one has
 * its beginning there and the rest in `rest`, read one bounded part at a time.
 */
export interface OpenedMessage {
  /** The trace prefix, and the body's first part when the store has it at hand. */
  head: Buffer[];
  /** The remaining parts, or undefined when `head` is the whole message. */
  rest: AsyncIterable<Buffer> | undefined;
  /**
   * Hands back a part of `rest` (or a slice of one) that nothing refers to any more, so that its
   * memory serves a later read. Optional for the reader: a part not handed back is garbage.
   */
  recycle?: (part: Buffer) => void;
}

/** Every byte of an opened message, in order, in bounded parts. */
export async function* messageBytes(m: OpenedMessage): AsyncIterable<Buffer> {
  yield* m.head;
  if (m.rest) yield* m.rest;
}

export interface TokenRecord {
  name: string;
  created: number;
  lastUsed: number | null;
}

export type QueueStatus = 'queued' | 'deferred' | 'delivered' | 'failed';

export interface QueueRecipient extends OutboundRecipient {
  id: number;
  status: QueueStatus;
  attempts: number;
  nextAttempt: number;
  lastReply: string | null;
  /** Set once a delay warning (RFC 3464 action=delayed) has been sent for it. */
  warned: boolean;
  /** The delivery status report its last outcome calls for, not sent yet (the queue runner's
   *  own text: the store keeps it as it is). */
  report?: string;
}

export interface QueueEntry {
  id: string;
  sender: string;
  created: number;
  dsn: DsnEnvelope;
  size: number;
  /**
   * True for a message written here: by an authenticated user, `send`, `sendmail`, the HTTP API
   * or mailnest itself. Only such a message is signed with DKIM on its way out; mail from the
   * internet that an alias sends on is not, whatever its From says (RFC 6376 §8: the signer
   * vouches for what it signs).
   */
  sign: boolean;
  recipients: QueueRecipient[];
}

/** A recipient whose next attempt is due, with what the queue runner needs of its entry. */
export interface DueRecipient {
  entry: Omit<QueueEntry, 'recipients'>;
  recipient: QueueRecipient;
}

export interface RecipientUpdate {
  recipientId: number;
  status: QueueStatus;
  attempts: number;
  nextAttempt: number;
  /** The recipient's next attempt as it was when this attempt was taken: a deferral does not
   *  put off a retry asked for (`queue retry`) while the attempt ran, which changed it. */
  dueWhenTaken?: number;
  lastReply: string | null;
  warned?: boolean;
  /** A report the outcome calls for, kept with it until it is sent (see QueueRecipient). Without
   *  one, a report still owed stays while the recipient waits on and goes once it is settled. */
  report?: string;
}

export interface Store {
  // --- users
  /** Throws StoreConflict when the address (case-insensitively) is a user or an alias. */
  createUser(address: string, passwordHash: string): Promise<UserRecord>;
  findUser(address: string): Promise<UserRecord | undefined>;
  /** The user created first among those of `domain` (case-insensitive). */
  firstUser(domain: string): Promise<UserRecord | undefined>;
  setPassword(address: string, passwordHash: string): Promise<boolean>;
  /** Removes the user, its mailboxes and its mail. */
  removeUser(address: string): Promise<boolean>;
  listUsers(): Promise<UserUsage[]>;

  // --- aliases
  /** Creates the alias or adds targets to it. Throws StoreConflict when the address is a user,
   *  or when `seen` is given and users or aliases have changed since `directoryVersion` gave it:
   *  what was checked against them (loops, depth) must be checked again. */
  addAlias(alias: string, targets: string[], seen?: number): Promise<void>;
  removeAlias(alias: string): Promise<boolean>;
  findAlias(alias: string): Promise<AliasRecord | undefined>;
  listAliases(): Promise<AliasRecord[]>;
  /** A number that changes whenever a user or an alias is added or removed, by any process. */
  directoryVersion(): Promise<number>;

  // --- accepting mail
  /** Commits the message durably (fsync) and resolves only then. */
  accept(message: Acceptance): Promise<void>;
  /** Outbound recipients of the mail `userId` sent (Acceptance.sentBy) in the day before `now`
   *  (ms), counted by the minute: mail of the minute a day ago counts whole. */
  sentInLastDay(userId: number, now: number): Promise<number>;

  // --- outbound delivery
  /** The MTA-STS policy kept for a domain (lower case), expired or not. */
  stsPolicy(domain: string): Promise<StsPolicy | undefined>;
  /** Keeps a domain's policy in place of the one before (and forgets those ended by then). */
  saveStsPolicy(policy: StsPolicy): Promise<void>;

  // --- mailboxes
  listMailbox(userId: number): Promise<MailboxEntry[]>;
  /** Opens a message of the user's INBOX; undefined when there is no such message, BodyMissing
   *  thrown when its body is gone from data_dir. */
  openMessage(userId: number, uid: number): Promise<OpenedMessage | undefined>;
  /** Deletes the given messages of one mailbox; resolves once every deletion is on disk. A
   *  failure may leave some of them in place (RFC 1939 §6 allows it), never half a message. */
  deleteMessages(userId: number, uids: number[]): Promise<void>;

  // --- outbound queue
  /** Entries holding recipients still to deliver (status queued/deferred). */
  listQueue(): Promise<QueueEntry[]>;
  getQueueEntry(id: string): Promise<QueueEntry | undefined>;
  /** Streams an outbound entry's prefix + body. */
  readQueued(id: string): AsyncIterable<Buffer>;
  updateRecipients(id: string, updates: RecipientUpdate[]): Promise<void>;
  /** Ids of the entries with a report owed to their sender. An entry whose recipients are all
   *  settled stays until its reports are sent. */
  entriesWithReports(): Promise<string[]>;
  /** The reports of these recipients went out, or will not: they are owed no more. Resolves
   *  once on disk. (A report queued as a message says so itself: Acceptance.reportOn.) */
  reportsSent(on: ReportOn): Promise<void>;
  /** Pending recipients with next_attempt <= now, oldest due first: `fresh` picks those never
   *  tried (attempts = 0), otherwise those tried before; ids in `exclude` (in flight) are skipped. */
  dueRecipients(now: number, limit: number, fresh: boolean, exclude: number[]): Promise<DueRecipient[]>;
  /** Recipients still to deliver, across the whole queue. */
  queueDepth(): Promise<number>;
  /** Sets next_attempt = now for pending recipients of one entry, or of all when id is undefined. */
  retryNow(id: string | undefined, now: number): Promise<number>;
  /** Removes an entry whatever its state. */
  removeQueued(id: string): Promise<boolean>;

  // --- API tokens (only hashes are kept)
  addToken(name: string, hash: string): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  touchToken(name: string, when: number): Promise<void>;
  listTokens(): Promise<TokenRecord[]>;
  removeToken(name: string): Promise<boolean>;

  // --- upkeep
  /** Removes what an interrupted write left behind and nothing refers to, takes back the space
   *  of deleted messages where it is not freed at once, and keeps room back for deleting mail
   *  on a full disk (see reserve.ts); returns how many files it removed,
   *  the queue ids of bodies found damaged on the way (left as they are), and how many places
   *  of dead space wait for the disk to have room to take them back. */
  sweep(): Promise<{ removed: number; damaged: string[]; waiting: number }>;

  close(): void;
}

/** A change refused for what is already there: `kind` says what the change met (the user or
 *  alias of that address, the token of that name, or users and aliases changed since seen). */
export class StoreConflict extends Error {
  readonly kind: 'user' | 'alias' | 'token' | 'changed';
  constructor(kind: StoreConflict['kind'], message: string) {
    super(message);
    this.kind = kind;
  }
}

/** A message whose body is not in data_dir (a file or body-log segment left out of a restored
 *  copy, docs/CONFIGURATION.md): it cannot be read again, and deleting it is all there is to do. */
export class BodyMissing extends Error {}

/** A write failed because the store's database has no room left (each store says it its way). */
export class StorageFull extends Error {}

/** A message refused before anything of it was written: the disk has less room than it needs
 *  beside what deletions need (see free-space.ts). Temporary, as StorageFull. */
export class NoRoom extends StorageFull {}

/**
 * True when a write failed because the disk (or the quota) holding data_dir is full: the
 * condition is temporary for the client (RFC 5321 §4.2.3: 452, insufficient system storage)
 * and is the operator's to fix.
 */
export function isStorageFull(err: unknown): boolean {
  if (err instanceof StorageFull) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** The lookup key of an address, and what makes two addresses one mailbox. Addresses are
 *  stored as given; lookups ignore case in the domain (RFC 5321 §2.4) and, as Postfix and
 *  Dovecot do, in the local part too (§2.4 lets only the mailbox's own host fold it, but every
 *  host in use does, and a message sent twice to one person is the likelier harm). An
 *  internationalised domain is one domain in either form, its U-labels or its A-labels. */
export function addressKey(address: string): string {
  const at = address.lastIndexOf('@');
  if (at < 0 || isAscii(address)) return address.toLowerCase();
  return `${address.slice(0, at).toLowerCase()}@${domainKey(address.slice(at + 1))}`;
}

/** A domain as compared: lower case, and in A-labels (RFC 5890 §2.3.2.1) when it has U-labels,
 *  so that "bücher.example" and "xn--bcher-kva.example" are the same domain. */
export function domainKey(domain: string): string {
  return (aLabels(domain) ?? domain).toLowerCase();
}

