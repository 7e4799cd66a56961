/**
 * Sending a delivery status notification (RFC 3464) to a message's sender, from the null sender
 * (RFC 3461 §6): one place for the queue's reports (failed, delayed, relayed) and for the
 * "delivered" ones of final delivery into local mailboxes.
 */
import { totalLength } from '../chunks.ts';
import type { Context } from '../context.ts';
import type { ReportOn } from '../store/store.ts';
import { acceptMessage, expands, type ResolvedRecipient } from './accept.ts';
import { buildDsn, HEADER_MAX, headerSection, type DsnRecipientReport } from './dsn.ts';
import { withoutReturnPath } from './trace.ts';

export interface Report {
  /** The original message's envelope sender, to whom the report goes (never ''). */
  sender: string;
  queueId: string;
  envid?: string;
  arrival: Date;
  recipients: DsnRecipientReport[];
  /** The original message's header section (HDRS) or all of it (FULL); absent when it could not
   *  be read. */
  original?: Buffer;
  ret: 'FULL' | 'HDRS';
  now: Date;
  /** A local sender no mailbox answers to has the report go to its domain's postmaster: for a
   *  failure or delay of mail written here (root@ from cron), not for what anyone may cause
   *  with a forged sender (a "delivered" report asked for from the internet). */
  orPostmaster?: boolean;
  /** The queue's recipients whose reports this is, owed no more once it is queued. */
  reportOn?: ReportOn;
}

/** Queues the report; resolves with where it goes, or undefined when the local sender does not
 *  exist and the report does not go to its postmaster (it is dropped and logged). */
export async function sendReport(ctx: Pick<Context, 'config' | 'store' | 'recipients' | 'log'>, r: Report): Promise<'local' | 'remote' | undefined> {
  const report = buildDsn({
    reportingMta: ctx.config.hostname,
    from: `MAILER-DAEMON@${ctx.config.hostname}`,
    to: r.sender,
    queueId: r.queueId,
    ...(r.envid ? { envid: r.envid } : {}),
    arrivalDate: r.arrival,
    recipients: r.recipients,
    ...(r.original ? { original: r.original } : {}),
    ret: r.ret,
    date: r.now,
  });
  let to = r.sender;
  let resolution = await ctx.recipients.resolve(to);
  if (resolution.kind === 'unknown' && r.orPostmaster) {
    // A local sender no mailbox answers to (root@, a script's backup@): its report goes to the
    // domain's postmaster, as a bounce that cannot be delivered does in Postfix, rather than
    // nowhere. The report still names the sender it was for.
    to = `postmaster@${r.sender.slice(r.sender.lastIndexOf('@') + 1)}`;
    resolution = await ctx.recipients.resolve(to);
    if (resolution.kind !== 'unknown') ctx.log.info({ id: r.queueId, sender: r.sender, to }, 'delivery status notification for a local sender that does not exist goes to the postmaster');
  }
  if (resolution.kind === 'unknown') {
    ctx.log.warn({ id: r.queueId, to: r.sender }, 'delivery status notification dropped: the local sender does not exist');
    return undefined;
  }
  const { id } = await acceptMessage(ctx.store, {
    writtenHere: true,
    sender: '',
    recipients: [{ address: to, resolution }],
    body: [report],
    received: { by: ctx.config.hostname, with: 'local' },
    ...(r.reportOn ? { reportOn: r.reportOn } : {}),
  });
  ctx.log.info({ id, about: r.queueId, to, actions: [...new Set(r.recipients.map((x) => x.action))] }, 'delivery status notification queued');
  return resolution.kind;
}

/**
 * Final delivery answers NOTIFY=SUCCESS (RFC 3461 §4.1, §6.2): each recipient that asked for it
 * and reached local mailboxes only gets a "delivered" report, once the message is committed (a
 * crash between the two loses the report, never the message); an alias that also sends the
 * message on gets "expanded" (see expands), and its copies go on without SUCCESS; an alias of one
 * address sent on gets nothing here, its copy carries the request on.
 */
export async function reportLocalDelivery(ctx: Pick<Context, 'config' | 'store' | 'recipients' | 'log'>, m: {
  sender: string;
  queueId: string;
  envid?: string;
  recipients: ResolvedRecipient[];
  body: Buffer[];
  /** The trace fields the local copies were stored with (see Accepted.localTrace). */
  trace: Buffer;
  now: Date;
}): Promise<void> {
  if (m.sender === '') return;
  // An alias that also sends the message on is "expanded" (RFC 3461 §6.2.7.3), which is not
  // terminal: its copies sent on may still fail; one of one address sent on reports nothing
  // here, the next hop does (§6.2.7.2).
  const delivered = m.recipients.filter((r) => r.resolution.kind === 'local' && r.notify?.includes('SUCCESS') && (expands(r.resolution) || (r.resolution.users.length > 0 && r.resolution.forward.length === 0)));
  if (delivered.length === 0) return;
  const copy = [m.trace, ...withoutReturnPath(m.body)];
  await sendReport(ctx, {
    sender: m.sender,
    queueId: m.queueId,
    ...(m.envid ? { envid: m.envid } : {}),
    arrival: m.now,
    recipients: delivered.map((r) => ({ address: r.address, ...(r.orcpt ? { orcpt: r.orcpt } : {}), action: expands(r.resolution) ? 'expanded' : 'delivered', status: '2.0.0', lastAttempt: m.now })),
    // The header as the recipient's copy has it, our Received among it, as a failure's has.
    original: headerSection(Buffer.concat(copy, Math.min(HEADER_MAX, totalLength(copy)))),
    ret: 'HDRS',
    now: m.now,
  });
}
