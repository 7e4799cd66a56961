/**
 * What the POP3 session asks of the world, and the answers it gets back. The session is
 * sans-I/O: checking a password, locking and listing the maildrop, opening a message and
 * committing deletions are performed by the handler (handler.ts) against the Store.
 */
import type { ClientInfo } from '../net/listener.ts';
import type { MailboxEntry } from '../store/store.ts';

/**
 * Identifies one session towards the handler (who holds a maildrop lock, which client address
 * a failed login is counted against). `closed` is set by the handler when the connection ends,
 * so a lock is never taken on behalf of a session that is already gone.
 */
export interface Pop3Owner {
  readonly client: ClientInfo;
  closed: boolean;
  /** Its QUIT's deletions are under way: the maildrop stays locked until they end. */
  quitting?: boolean;
}

export type Pop3Effect =
  /** Check the credentials, then lock and list the maildrop (RFC 1939 §4, §8). */
  | { type: 'login'; owner: Pop3Owner; username: string; password: string }
  /** Open one message for RETR or TOP. */
  | { type: 'retrieve'; userId: number; uid: number }
  /** The UPDATE state (RFC 1939 §6): remove `uids` (durably; a failure may leave some), then
   *  release the lock. */
  | { type: 'quit'; owner: Pop3Owner; userId: number; uids: number[] };

export type LoginResult =
  | { type: 'ok'; userId: number; address: string; entries: MailboxEntry[] }
  /** Unknown user and wrong password are the same answer. `disconnect`: attempts used up. */
  | { type: 'auth-failed'; disconnect: boolean }
  /** The client address is still over the failed-login limit from earlier sessions. */
  | { type: 'blocked' }
  /** Another session holds the maildrop (RFC 1939 §8, RFC 2449 §8.1.1 [IN-USE]). */
  | { type: 'in-use' }
  /** The store failed: RFC 3206 [SYS/TEMP]. */
  | { type: 'temp' };

export type RetrieveResult =
  /** `recycle`: where the parts of `source` go back once they are on the network (OpenedMessage). */
  | { type: 'message'; source: AsyncIterable<Buffer>; recycle?: (part: Buffer) => void }
  /** A message read whole (it fits in one stored part): framed and sent in one write. */
  | { type: 'whole'; parts: Buffer[] }
  /** The message vanished from the store (e.g. the user was removed meanwhile). */
  | { type: 'missing' }
  /** The store could not read it now: RFC 3206 [SYS/TEMP]. */
  | { type: 'failed' };

export type QuitResult = { type: 'committed' } | { type: 'commit-failed' };

export type Pop3Result = LoginResult | RetrieveResult | QuitResult;
