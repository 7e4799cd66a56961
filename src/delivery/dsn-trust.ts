/**
 * What the DSN requests (RFC 3461) of a sender nothing vouches for are worth. A stranger on the
 * MX may name anyone as the envelope sender; were its NOTIFY=SUCCESS or DELAY, or RET=FULL,
 * honoured, each of its messages would have us send that someone a report carrying the
 * stranger's text, from our address and signed with our domain: backscatter on request.
 * Exim, for one, offers DSN to no client unless told to (dsn_advertise_hosts); here a sender whose
 * domain's SPF record (RFC 7208) authorizes the client is vouched for, so that delivery receipts
 * asked for by a real mail system still come back to it.
 *
 * Unvouched, a request keeps what any sender gets anyway: a report of a failure, with the
 * message's header section only (RET=HDRS, RFC 3461 §4.3). NOTIFY=NEVER stays NEVER, and a
 * request for successes alone becomes one for nothing (§4.1: it asked for no failure report).
 */
import type { DsnEnvelope, DsnRecipient } from '../store/store.ts';

export interface Unvouched<R> {
  dsn: DsnEnvelope;
  recipients: R[];
  /** What was asked for and is not honoured ("RET=FULL", "NOTIFY=SUCCESS", ...), for the log. */
  dropped: string[];
}

export function unvouchedDsn<R extends DsnRecipient>(dsn: DsnEnvelope, recipients: R[]): Unvouched<R> {
  const dropped = new Set<string>();
  if (dsn.ret === 'FULL') dropped.add('RET=FULL');
  const kept = recipients.map((r) => {
    // Without NOTIFY, failures and delays are reported (queue-runner.ts): delays no more.
    const asked = r.notify ?? ['FAILURE', 'DELAY'];
    const notify = asked.filter((n) => n === 'FAILURE' || n === 'NEVER');
    for (const n of r.notify ?? []) if (n === 'SUCCESS' || n === 'DELAY') dropped.add(`NOTIFY=${n}`);
    return { ...r, notify: notify.length > 0 ? notify : ['NEVER' as const] };
  });
  return { dsn: { ...dsn, ...(dsn.ret === 'FULL' ? { ret: 'HDRS' as const } : {}) }, recipients: kept, dropped: [...dropped] };
}
