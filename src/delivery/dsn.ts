/**
 * Delivery status notifications (RFC 3464, carried as RFC 6522 multipart/report): a human
 * readable part, the machine readable message/delivery-status, and the original message's
 * headers (RET=HDRS, our default) or the whole message (RET=FULL). A delivery status that names
 * an address beyond ASCII, and an original whose header is UTF-8, take the types of RFC 6533.
 */
import crypto from 'node:crypto';
import { isAscii } from '../ascii.ts';
import { hasEightBit } from '../chunks.ts';
import { headerEnd } from '../mime/header-section.ts';
import { rfc5322Date } from './trace.ts';

export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed' | 'expanded';

export interface DsnRecipientReport {
  address: string;
  /** The ORCPT parameter as given ("rfc822;user@example.org"). */
  orcpt?: string;
  action: DsnAction;
  /** The reply that decided it, one line ("550 5.1.1 no such user"). */
  reply?: string;
  /** The host that gave the reply. */
  remoteMta?: string;
  lastAttempt?: Date;
  /** For action=delayed: when the queue gives up. */
  willRetryUntil?: Date;
  /** Overrides the status derived from the reply (e.g. 4.4.7 for an expired message). */
  status?: string;
  /** Said to the sender after the reply, in the text part only (the Diagnostic-Code is the
   *  reply alone, RFC 3464 §2.3.6). */
  note?: string;
  /** The reply is mailnest's own: no Remote-MTA said it, so it is no `smtp` diagnostic
   *  (RFC 3464 §2.3.5, §2.3.6). */
  ownReply?: boolean;
}

/** A recipient's report as kept with its outcome until it is sent (QueueRecipient.report):
 *  JSON, its dates as milliseconds. */
export function reportText(r: DsnRecipientReport): string {
  return JSON.stringify({ ...r, lastAttempt: r.lastAttempt?.getTime(), willRetryUntil: r.willRetryUntil?.getTime() });
}

export function reportFromText(text: string): DsnRecipientReport {
  const { lastAttempt, willRetryUntil, ...rest } = JSON.parse(text) as Omit<DsnRecipientReport, 'lastAttempt' | 'willRetryUntil'> & { lastAttempt?: number; willRetryUntil?: number };
  return { ...rest, ...(lastAttempt === undefined ? {} : { lastAttempt: new Date(lastAttempt) }), ...(willRetryUntil === undefined ? {} : { willRetryUntil: new Date(willRetryUntil) }) };
}

export interface DsnInput {
  /** Our host name (Reporting-MTA). */
  reportingMta: string;
  /** The From of the report: MAILER-DAEMON at our host. */
  from: string;
  /** The envelope sender of the original message, to whom the report goes. */
  to: string;
  queueId: string;
  envid?: string;
  arrivalDate: Date;
  recipients: DsnRecipientReport[];
  /** The original message: its header section (HDRS) or all of it (FULL); absent when it could
   *  not be read (the report then has no third part, which RFC 3464 §2 allows). */
  original?: Buffer;
  ret: 'FULL' | 'HDRS';
  date?: Date;
}

/** An SMTP reply (RFC 5321 §4.2): three digits, then a space, a hyphen or the end; not an
 *  address such as "127.0.0.1:25: connection refused". */
const SMTP_REPLY = /^[245]\d\d(?:[ -]|$)/;

/**
 * The RFC 3463 status code of a reply: its enhanced code when it has one, else from the basic
 * code. A delayed recipient's status is transient (class 4, RFC 3463 §3.1) even when the reply
 * was a 5xx that mailnest does not take as final (a refused greeting).
 */
export function statusOf(reply: string | undefined, action: DsnAction): string {
  const m = reply && /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  const basic = reply && SMTP_REPLY.test(reply) ? `${reply[0]}.0.0` : undefined;
  const status = m ? m[1]! : basic ?? networkStatus(reply, action);
  if (status) return action === 'delayed' ? status.replace(/^5/, '4') : status;
  if (action === 'failed') return '5.0.0';
  if (action === 'delayed') return '4.0.0';
  return '2.0.0';
}

/** RFC 3463 §3.5 for what went wrong on the way to a server: X.4.1 no answer from the host
 *  (refused, unreachable, timed out), X.4.2 a connection that broke. */
function networkStatus(reply: string | undefined, action: DsnAction): string | undefined {
  const c = action === 'failed' ? '5' : '4';
  // RFC 3463 X.4.1, no answer from host: no connection, or no greeting on it. X.4.2, bad
  // connection: one made and then lost, or silent mid-session (a reply timed out).
  // (The codes, ECONNREFUSED and the like, are how replies stored by earlier versions say it.)
  if (reply && /connection refused|host is unreachable|network is unreachable|connection timed out|ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|Connection timeout|Greeting never received/i.test(reply)) return `${c}.4.1`;
  if (reply && /connection reset|broken pipe|no reply within|ECONNRESET|EPIPE|ETIMEDOUT|connection (lost|closed)/i.test(reply)) return `${c}.4.2`;
  return undefined;
}

/** The most of a message's header section that is read for a report or for DKIM signing. */
export const HEADER_MAX = 64 * 1024;

/** The header section of a message (its fields, without the empty line; see headerEnd), at
 *  most `max` bytes. */
export function headerSection(message: Buffer, max = HEADER_MAX): Buffer {
  return message.subarray(0, Math.min(headerEnd([message]).end, max));
}

/** Header field text we write: no CR/LF. */
function clean(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').trim();
}

/** An address with its type (RFC 3464 §2.3.2): `utf-8` for one beyond ASCII, which only a
 *  message/global-delivery-status may carry as it is (RFC 6533 §3). */
function typedAddress(address: string): string {
  return `${isAscii(address) ? 'rfc822' : 'utf-8'}; ${clean(address)}`;
}

/** True when the delivery-status of `d` holds text beyond ASCII (an address, or a reply of a
 *  next hop that speaks SMTPUTF8), which only message/global-delivery-status may (RFC 6533 §6). */
function globalStatus(d: DsnInput): boolean {
  return d.recipients.some((r) => !isAscii(r.address) || !isAscii(r.orcpt ?? '') || !isAscii(r.reply ?? ''));
}

/** xtext-encoded ORCPT kept as given, prefixed with its type when it has none. */
function originalRecipient(orcpt: string): string {
  return orcpt.includes(';') ? clean(orcpt) : `rfc822;${clean(orcpt)}`;
}

function subjectFor(actions: Set<DsnAction>): string {
  if (actions.has('failed')) return 'Undelivered Mail Returned to Sender';
  if (actions.has('delayed')) return 'Delayed Mail (still being retried)';
  return 'Successful Mail Delivery Report';
}

function humanText(d: DsnInput): string {
  const lines: string[] = [];
  const failed = d.recipients.filter((r) => r.action === 'failed');
  const delayed = d.recipients.filter((r) => r.action === 'delayed');
  const done = d.recipients.filter((r) => r.action === 'delivered' || r.action === 'relayed' || r.action === 'expanded');
  lines.push(`This is the mail system at host ${d.reportingMta}.`, '');
  if (failed.length) {
    const attached = !d.original ? 'It could not be attached: it is no longer stored here.' : d.ret === 'FULL' ? 'It is attached below.' : 'Its header is attached below.';
    lines.push('Your message could not be delivered to one or more recipients.',
      `${attached} The mail system gave these reasons:`, '');
    for (const r of failed) lines.push(`<${r.address}>: ${r.reply ?? 'delivery failed'}${r.note ? ` (${r.note})` : ''}`);
    lines.push('');
  }
  if (delayed.length) {
    lines.push('Your message has not been delivered yet to these recipients.',
      'The mail system will keep trying; you do not need to send it again.', '');
    for (const r of delayed) {
      const until = r.willRetryUntil ? ` (retrying until ${rfc5322Date(r.willRetryUntil)})` : '';
      lines.push(`<${r.address}>: ${r.reply ?? 'delivery delayed'}${until}`);
    }
    lines.push('');
  }
  if (done.length) {
    lines.push('Your message was delivered to these recipients:', '');
    for (const r of done) lines.push(`<${r.address}>: ${r.action}${r.reply ? ` (${r.reply})` : ''}`);
    lines.push('');
  }
  return lines.join('\r\n');
}

/** The delivery-status body (RFC 3464 §2.2, §2.3). */
export function deliveryStatus(d: DsnInput): string {
  const out: string[] = [`Reporting-MTA: dns; ${clean(d.reportingMta)}`];
  out.push(`X-Mailnest-Queue-ID: ${clean(d.queueId)}`);
  if (d.envid) out.push(`Original-Envelope-Id: ${clean(d.envid)}`);
  out.push(`Arrival-Date: ${rfc5322Date(d.arrivalDate)}`);
  for (const r of d.recipients) {
    out.push('');
    if (r.orcpt) out.push(`Original-Recipient: ${originalRecipient(r.orcpt)}`);
    out.push(`Final-Recipient: ${typedAddress(r.address)}`);
    out.push(`Action: ${r.action}`);
    out.push(`Status: ${r.status ?? statusOf(r.reply, r.action)}`);
    if (r.remoteMta) out.push(`Remote-MTA: dns; ${clean(r.remoteMta)}`);
    if (r.reply && SMTP_REPLY.test(r.reply) && !r.ownReply) out.push(`Diagnostic-Code: smtp; ${clean(r.reply)}`);
    else if (r.reply) out.push(`Diagnostic-Code: X-mailnest; ${clean(r.reply)}`);
    if (r.lastAttempt) out.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
    if (r.willRetryUntil) out.push(`Will-Retry-Until: ${rfc5322Date(r.willRetryUntil)}`);
  }
  return `${out.join('\r\n')}\r\n`;
}

/** The complete report, CRLF line ends, ready for acceptMessage. */
export function buildDsn(d: DsnInput): Buffer {
  const boundary = `=_report_${crypto.randomBytes(12).toString('hex')}`;
  const actions = new Set(d.recipients.map((r) => r.action));
  const date = d.date ?? new Date();
  const messageId = `<${d.queueId}.${crypto.randomBytes(6).toString('hex')}.dsn@${clean(d.reportingMta)}>`;
  const status = globalStatus(d) ? 'message/global-delivery-status' : 'message/delivery-status';
  const head = [
    `From: Mail Delivery System <${clean(d.from)}>`,
    `To: <${clean(d.to)}>`,
    `Subject: ${subjectFor(actions)}`,
    `Date: ${rfc5322Date(date)}`,
    `Message-ID: ${messageId}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    // The report-type is the status part's subtype (RFC 6522 §3).
    `Content-Type: multipart/report; report-type=${status.slice('message/'.length)};\r\n\tboundary="${boundary}"`,
  ].join('\r\n');
  const human = humanText(d);
  const report = deliveryStatus(d);
  return Buffer.concat([
    Buffer.from(`${head}\r\n\r\nThis is a MIME-encapsulated delivery status notification.\r\n\r\n`
      + `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n${eightBit(human)}Content-Description: Notification\r\n\r\n${human}\r\n`
      + `--${boundary}\r\nContent-Type: ${status}\r\n${eightBit(report)}Content-Description: Delivery report\r\n\r\n${report}\r\n`, 'utf8'),
    ...(d.original ? originalPart(d, d.original, boundary) : []),
    Buffer.from(`--${boundary}--\r\n`, 'utf8'),
  ]);
}

/** The third part: the original message or its header section, with its delimiter line. */
function originalPart(d: DsnInput, message: Buffer, boundary: string): Buffer[] {
  // A report of deliveries only (delivered, relayed) is not about an undelivered message.
  const what = d.recipients.some((r) => r.action === 'failed' || r.action === 'delayed') ? 'Undelivered Message' : 'Message';
  // UTF-8 in the original's header (RFC 6532 §3.2) makes it message/global (§3.7) and its
  // header section message/global-headers (RFC 6533 §6.3).
  const utf8Header = hasEightBit(headerSection(message));
  const type = d.ret === 'FULL'
    ? `Content-Type: message/${utf8Header ? 'global' : 'rfc822'}\r\nContent-Description: ${what}\r\n\r\n`
    : `Content-Type: ${utf8Header ? 'message/global-headers' : 'text/rfc822-headers'}\r\nContent-Description: ${what} Headers\r\n\r\n`;
  let body = d.ret === 'FULL' ? message : headerSection(message);
  if (body.length > 0 && !body.subarray(-2).equals(Buffer.from('\r\n'))) body = Buffer.concat([body, Buffer.from('\r\n')]);
  return [Buffer.from(`--${boundary}\r\n${eightBit(body)}${type}`, 'utf8'), body, Buffer.from('\r\n', 'utf8')];
}

/** A part with 8-bit text says so; without the field it would be 7bit (RFC 2045 §6.1). */
function eightBit(text: string | Buffer): string {
  return hasEightBit(Buffer.from(text)) ? 'Content-Transfer-Encoding: 8bit\r\n' : '';
}
