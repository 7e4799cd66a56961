/**
 * Accepting a message, the one path shared by SMTP DATA/BDAT, `mailnest send`, sendmail and the
 * HTTP API: local copies (Return-Path + Received) for local users, one outbound entry for the
 * rest, all committed durably before the caller may say "accepted".
 */
import { addressKey, type DsnEnvelope, type DsnRecipient, type ReportOn, type Store, type UserRecord } from '../store/store.ts';
import { newQueueId } from '../store/queue-id.ts';
import { withHeaderEnd } from '../mime/header-section.ts';
import { receivedHeader, returnPathHeader, withoutReturnPath, type ReceivedInfo } from './trace.ts';
import type { Resolution } from './recipients.ts';

export interface ResolvedRecipient extends DsnRecipient {
  address: string;
  resolution: Exclude<Resolution, { kind: 'unknown' }>;
}

export interface Submission {
  sender: string;
  dsn?: DsnEnvelope;
  recipients: ResolvedRecipient[];
  body: Buffer[];
  received: Omit<ReceivedInfo, 'id' | 'for' | 'date'>;
  /** Header lines from the checks made on arrival (Authentication-Results), CRLF-terminated. */
  checks?: string;
  /**
   * True when the message was written here (an authenticated user, `send`, `sendmail`, the
   * HTTP API, mailnest's own reports): what it sends on may carry mailnest's DKIM signature.
   * False for mail from the internet, which an alias may send on but mailnest never vouches for.
   */
  writtenHere: boolean;
  /** A delivery status report: the queue's recipients it is about (see Acceptance.reportOn). */
  reportOn?: ReportOn;
  /** The user who sent it over submission (see Acceptance.sentBy). */
  sentBy?: number;
}

export interface Accepted {
  id: string;
  /** The trace fields the local copies begin with (Return-Path, the checks, our Received). */
  localTrace: Buffer;
}

/** Commits the message; resolves once it is on disk. */
export async function acceptMessage(store: Store, s: Submission, now = new Date()): Promise<Accepted> {
  const id = newQueueId(now.getTime());
  const users = new Map<number, UserRecord>();
  const outbound = new Map<string, { address: string } & DsnRecipient>();
  // One outbound copy per remote mailbox, with the DSN parameters of its first naming by the
  // sender, else of the first alias that sends the message to it: what the sender asked of an
  // address it named itself is not lost to an alias that also leads there.
  for (const r of s.recipients) {
    if (r.resolution.kind !== 'remote') continue;
    const key = addressKey(r.address);
    if (!outbound.has(key)) outbound.set(key, { address: r.address, ...(r.notify ? { notify: r.notify } : {}), ...(r.orcpt ? { orcpt: r.orcpt } : {}) });
  }
  for (const r of s.recipients) {
    if (r.resolution.kind !== 'local') continue;
    for (const u of r.resolution.users) users.set(u.id, u);
    // A copy an alias sends on remembers the address the sender used (RFC 3461 §4.2), so that a
    // bounce names it, with the NOTIFY the sender asked for: all of it from an alias of one
    // address (§6.2.7.2); from one of several, less SUCCESS, which the "expanded" report answers
    // here (§6.2.7.3).
    const notify = expands(r.resolution) ? forwardedNotify(r.notify) : r.notify;
    for (const f of r.resolution.forward) {
      const key = addressKey(f);
      if (!outbound.has(key)) outbound.set(key, { address: f, ...(notify ? { notify } : {}), orcpt: r.orcpt ?? `rfc822;${r.address}` });
    }
  }
  const single = s.recipients.length === 1 ? s.recipients[0]!.address : undefined;
  const received = { ...s.received, id, date: now, ...(single ? { for: single } : {}) };
  // Trace fields, newest first (RFC 5322 §3.6.7): Return-Path, our checks, our Received. The
  // login a message was sent with is noted only in the copies kept here: the copies that leave
  // would tell every recipient which account is behind an alias the user wrote as (Postfix's
  // smtpd_sasl_authenticated_header is off for the same reason).
  const localPrefix = Buffer.from(returnPathHeader(s.sender) + (s.checks ?? '') + receivedHeader(received), 'utf8');
  const { auth: _login, ...leaving } = received;
  const outboundPrefix = Buffer.from((s.checks ?? '') + receivedHeader(leaving), 'utf8');
  await store.accept({
    id,
    body: withHeaderEnd(withoutReturnPath(s.body)),
    sender: s.sender,
    ...(s.dsn ? { dsn: s.dsn } : {}),
    local: [...users.keys()].map((userId) => ({ userId, prefix: localPrefix })),
    ...(outbound.size > 0 ? { outbound: { prefix: outboundPrefix, recipients: [...outbound.values()], sign: s.writtenHere } } : {}),
    ...(s.reportOn ? { reportOn: s.reportOn } : {}),
    ...(s.sentBy !== undefined ? { sentBy: s.sentBy } : {}),
  });
  return { id, localTrace: localPrefix };
}

/** The copies a message to `recipients` is stored as (a local mailbox's, a queued recipient's),
 *  for what it takes of the disk (FreeSpace.take): aliases counted as what they lead to, and a
 *  user named twice twice (stored once: the count errs on the side of room). */
export function copiesOf(recipients: ResolvedRecipient[]): number {
  return recipients.reduce((n, r) => n + (r.resolution.kind === 'local' ? r.resolution.users.length + r.resolution.forward.length : 1), 0);
}

/** An address that an alias turns into several, some of them sent on (RFC 3461 §6.2.7.3): its
 *  delivery here is not the end of the message's way, so a SUCCESS asked of it is answered
 *  "expanded", not "delivered". */
export function expands(resolution: ResolvedRecipient['resolution']): boolean {
  return resolution.kind === 'local' && resolution.forward.length > 0 && resolution.users.length + resolution.forward.length > 1;
}

/** The NOTIFY the copies an expanded alias sends on carry: the sender's, less SUCCESS (NEVER
 *  when nothing is left). */
function forwardedNotify(notify: DsnRecipient['notify']): DsnRecipient['notify'] {
  if (!notify?.includes('SUCCESS')) return notify;
  const rest = notify.filter((n) => n !== 'SUCCESS');
  return rest.length > 0 ? rest : ['NEVER'];
}
