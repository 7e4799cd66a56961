/**
 * What mailnest does to the header of a message its users hand in, as a message submission
 * agent (RFC 6409 §8), in one place for SMTP submission and the sendmail command:
 *
 * - Bcc and Resent-Bcc fields are removed, so that blind recipients stay hidden from the others
 *   (RFC 5322 §3.6.3) (a Return-Path goes from every message accepted: delivery/trace.ts);
 * - From, Date (RFC 6409 §8.3) and Message-ID (§8.4) are added when missing: RFC 5322 §3.6
 *   requires From and Date, and DKIM cannot sign a message without From (RFC 6376 §5.4).
 */
import crypto from 'node:crypto';
import addressparser from 'nodemailer/lib/addressparser';
import { splitAt } from '../chunks.ts';
import { rfc5322Date } from '../delivery/trace.ts';
import { hasStrayName } from './addresses.ts';
import { headerEnd, unfoldedValue, withHeaderEnd } from './header-section.ts';

/** The fields a submitted message loses. */
export const DROPPED_FIELD = /^(?:bcc|resent-bcc)$/i;

/** The fields missingFields writes that a message may hold empty (a script's `Date: $DATE`
 *  with nothing in the variable): such a field is none, and is replaced. RFC 5322 gives neither
 *  an empty value (§3.3 date-time, §3.6.4 msg-id), and receivers refuse mail without them. */
const WRITTEN_WHEN_MISSING = /^(?:date|message-id|resent-date|resent-message-id)$/i;

export function isEmptyWritten(name: string, value: string): boolean {
  return WRITTEN_WHEN_MISSING.test(name) && value.trim() === '';
}

export interface Completion {
  /** The value of a From field that has to be added (the sender's address). */
  from: string;
  /** The right-hand side of a Message-ID that has to be added. */
  hostname: string;
  now: Date;
}

/** The fields that make a message one resent (RFC 5322 §3.6.6). */
const RESENT = ['resent-to', 'resent-cc', 'resent-bcc', 'resent-from', 'resent-sender', 'resent-date', 'resent-message-id'];

/**
 * The fields (unfolded, without CRLF) to add to a header that has the fields `has` says. A
 * message being resent gets the Resent- fields its block lacks (RFC 5322 §3.6.6: Resent-Date and
 * Resent-From are required there), the resender's, as Postfix's cleanup adds them; its From and
 * Date, the original's, only when it has none at all. A Message-ID is added to any message
 * without one: the big receivers refuse mail that has none.
 */
export function missingFields(has: (lowerCaseName: string) => boolean, c: Completion): string[] {
  const out: string[] = [];
  const resent = RESENT.some((name) => has(name));
  if (!has('from')) out.push(`From: ${c.from}`);
  if (!has('date')) out.push(`Date: ${rfc5322Date(c.now)}`);
  if (!has('message-id')) out.push(`Message-ID: <${crypto.randomUUID()}@${c.hostname}>`);
  if (resent) {
    if (!has('resent-from')) out.push(`Resent-From: ${c.from}`);
    if (!has('resent-date')) out.push(`Resent-Date: ${rfc5322Date(c.now)}`);
    if (!has('resent-message-id')) out.push(`Resent-Message-ID: <${crypto.randomUUID()}@${c.hostname}>`);
  }
  return out;
}

/** An originator field longer than this is not read (a list of megabytes costs the parser a
 *  second per few MB, on the event loop), and the message is refused: real ones name a person. */
export const MAX_ORIGINATOR_BYTES = 16 * 1024;

/** The fields that name who wrote or sent a message (RFC 5322 §3.6.2, §3.6.6). */
const ORIGINATOR_FIELD = /^(?:from|sender|resent-from|resent-sender)$/i;

export interface Completed {
  message: Buffer[];
  /** Each address of the originator fields (From, Sender, Resent-From, Resent-Sender) as the
   *  message now has them, with the field's name ('' for an entry without one, or for a field
   *  too long to be read: `tooLong`). */
  originators: { field: string; address: string; tooLong?: true }[];
}

/**
 * A message received over SMTP submission with those rules applied. Only the header section is
 * copied; the body's chunks are passed on as they are. (The message is whole CRLF lines: SMTP
 * refuses a bare CR or LF.) The header section ends at the first line that is not a field: when
 * that is not the empty line RFC 5322 §2.1 puts there, the body begins with it, and the empty
 * line is put in first. Otherwise the fields added would run into the text: a message that
 * begins with a space would have its next lines read as their continuation and the header
 * after them (`From:` someone else's, unchecked, and a `Bcc:` shown to all).
 */
export function completeSubmission(input: Buffer[], c: Completion): Completed {
  const message = withHeaderEnd(input);
  const { end } = headerEnd(message);
  const [header, rest] = splitAt(message, end);
  const given = splitFields(header);
  const fields = given.filter((f) => !isEmptyWritten(f.name, unfoldedValue(f.bytes.toString('latin1'))));
  const names = new Set(fields.map((f) => f.name.toLowerCase()));
  const originators: Completed['originators'] = fields.filter((f) => ORIGINATOR_FIELD.test(f.name)).flatMap((f) => (f.bytes.length > MAX_ORIGINATOR_BYTES
    ? [{ field: f.name, address: '', tooLong: true as const }]
    : addresses(f.bytes).map((address) => ({ field: f.name, address }))));
  const kept = fields.filter((f) => !DROPPED_FIELD.test(f.name));
  const missing = missingFields((name) => names.has(name), c);
  if (!names.has('from')) originators.push({ field: 'From', address: c.from });
  if (kept.length === given.length && missing.length === 0) return { message, originators };
  const added = Buffer.from(missing.map((line) => `${line}\r\n`).join(''), 'utf8');
  return { message: [Buffer.concat([...kept.map((f) => f.bytes), added]), ...rest], originators };
}

/** The addresses in an address-list field (RFC 5322 §3.4), display names and groups aside; ''
 *  for an entry that has none (`From: victim`, `From: undisclosed:;`), so that it is not
 *  taken for a field that names nobody in particular, and for a field that readers read in
 *  different ways (`From: bob@example.com <alice@example.com>`, which one takes for alice's and
 *  another for bob's). */
function addresses(field: Buffer): string[] {
  const value = unfoldedValue(field.toString('utf8'));
  if (hasStrayName(value)) return [''];
  const list = addressparser(value, { flatten: true }).map((a) => (a.address.includes('@') ? a.address : ''));
  return list.length > 0 ? list : [''];
}

interface RawField {
  name: string;
  /** The field's lines as received, CRLFs included. */
  bytes: Buffer;
}

/** The header's fields, each with its continuation lines (RFC 5322 §2.2.3). */
function splitFields(header: Buffer): RawField[] {
  const fields: RawField[] = [];
  let start = 0;
  /** Where the last field began: its lines are one stretch of the header, taken whole (not
   *  copied line by line, which costs the square of a long field's length). */
  let fieldStart = 0;
  while (start < header.length) {
    let end = header.indexOf('\r\n', start);
    end = end < 0 ? header.length : end + 2;
    const continued = header[start] === 0x20 || header[start] === 0x09;
    const last = fields[fields.length - 1];
    if (continued && last) last.bytes = header.subarray(fieldStart, end);
    else {
      const colon = header.indexOf(':', start);
      fields.push({ name: colon >= 0 && colon < end ? header.subarray(start, colon).toString('latin1').trim() : '', bytes: header.subarray(start, end) });
      fieldStart = start;
    }
    start = end;
  }
  return fields;
}
