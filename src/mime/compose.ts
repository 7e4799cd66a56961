/**
 * Building a MIME message (RFC 2045-2049, RFC 5322) from the parts `mailnest send` and the
 * HTTP API take: text, HTML, attachments and inline images. nodemailer's MailComposer does the
 * encoding; this module decides what it is given and checks what comes out:
 *
 * - structure: text/plain or text/html alone; multipart/alternative when both; multipart/related
 *   for images referenced by Content-ID from the HTML; multipart/mixed around attachments,
 *   after an empty text part when there is no text.
 * - transfer encoding per part (MailComposer's rule): 7bit for ASCII text with lines of at most
 *   76 characters, quoted-printable for text that is mostly Latin letters, base64 otherwise and
 *   for every attachment but an attached message (76-character lines), so attachment bytes come
 *   back identical (see attachmentPart).
 * - RFC 2047 encoded-words for non-ASCII subjects, display names and other header text;
 *   RFC 2231 parameter encoding for non-ASCII file names in Content-Disposition.
 * - Date, Message-ID (<random@hostname>) and MIME-Version always; CRLF line ends; every line
 *   at most 998 octets (RFC 5322 §2.1.1), checked on the result.
 * - Bcc recipients are envelope recipients only: never a header.
 */
import { isUtf8 } from 'node:buffer';
import crypto from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import type MimeNode from 'nodemailer/lib/mime-node';
import { foldLines } from 'nodemailer/lib/mime-funcs';
import { encodedWords } from './encoded-words.ts';
import { rfc5322Date } from '../delivery/trace.ts';
import { emptyGroups, formatAddressList, formatPhraseList, parseAddressList, parseSingleAddress, uniqueAddresses } from './addresses.ts';
import { contentTypeFor, OCTET_STREAM, parameterValue, parseContentType } from './types.ts';
import { MAX_LINE, MAX_WORD } from './line-length.ts';
import { ComposeError } from './errors.ts';
import { ENCODED_WORD } from './header-section.ts';
import { withoutComments } from './structured-value.ts';

export { ComposeError };

export interface ComposeAttachment {
  filename: string;
  content: Buffer;
  /** Taken from the file name when absent. */
  contentType?: string;
  /** Content-ID: the part becomes an inline image the HTML refers to as `cid:<cid>`. */
  cid?: string;
}

export interface ComposeHeader {
  name: string;
  value: string;
}

export interface ComposeInput {
  /** One address, optionally with a display name: `Backup <backup@example.com>`. */
  from: string;
  to?: string[];
  cc?: string[];
  /** Envelope recipients only; never written into the message. */
  bcc?: string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments?: ComposeAttachment[];
  headers?: ComposeHeader[];
  /** Our host name, the right-hand side of the generated Message-ID. */
  hostname: string;
  date?: Date;
}

export interface ComposedMessage {
  /** The whole message, CRLF line ends. */
  message: Buffer;
  /** Envelope sender: the From address. */
  sender: string;
  /** Envelope recipients: To, Cc and Bcc, each once. */
  recipients: string[];
  messageId: string;
}

/** Headers a caller may not set: why, and the input field that sets them when one does. */
const OWNED_HEADERS: Record<string, { why: string; instead?: string }> = {
  'from': { why: 'it is set from "from"', instead: 'from' },
  'to': { why: 'it is set from "to"', instead: 'to' },
  'cc': { why: 'it is set from "cc"', instead: 'cc' },
  'bcc': { why: 'Bcc recipients go in "bcc" and are never written into the message', instead: 'bcc' },
  'resent-bcc': { why: 'blind recipients go in "bcc" and are never written into the message (RFC 5322 §3.6.6)', instead: 'bcc' },
  'subject': { why: 'it is set from "subject"', instead: 'subject' },
  'mime-version': { why: 'the MIME structure sets it' },
  'return-path': { why: 'it is added at final delivery (RFC 5321 §4.4)' },
};

/** The characters a header value given here may have: one that is parsed (addresses, Keywords)
 *  costs the parser about a second per few megabytes, and none needs more. To, Cc and Bcc may
 *  have sixteen times as many each, for a long list. */
const MAX_PARSED_VALUE = 16 * 1024;
const MAX_VALUE = 64 * 1024;

/** The fields a caller may set that a message has at most once (RFC 5322 §3.6, the table). */
const ONCE = new Set(['date', 'sender', 'reply-to', 'message-id', 'in-reply-to', 'references']);

/** Fields a caller may set that hold addresses: one mailbox, or a list (RFC 5322 §3.6.2, §3.6.6;
 *  RFC 8098 §2.1). They are parsed as From and To are, and written the same way. */
const ADDRESS_FIELDS: Record<string, 'one' | 'list'> = {
  'sender': 'one', 'resent-sender': 'one',
  'reply-to': 'list', 'resent-from': 'list', 'resent-to': 'list', 'resent-cc': 'list', 'disposition-notification-to': 'list',
};

/** Fields that hold message identifiers: one, or one or more (RFC 5322 §3.6.4, §3.6.6). */
const ID_FIELDS: Record<string, 'one' | 'list'> = { 'message-id': 'one', 'resent-message-id': 'one', 'in-reply-to': 'list', 'references': 'list' };
/** RFC 5322 §3.6.4 msg-id: "<" dot-atom-text "@" (dot-atom-text / no-fold-literal) ">". */
const MSG_ID = /<[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*@(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?:\.[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*|\[[!-Z^-~]*\])>/;
const ONE_ID = new RegExp(`^${MSG_ID.source}$`);
const ID_LIST = new RegExp(`^${MSG_ID.source}(?:[ \t]*${MSG_ID.source})*$`);

/** RFC 5322 §3.6.8 field-name = 1*ftext, ftext = %d33-57 / %d59-126. */
const FIELD_NAME = /^[!-9;-~]{1,76}$/;

/** "Name: value" (as given to --header) into a header; throws ComposeError. */
export function parseHeaderArg(text: string, field: string): ComposeHeader {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new ComposeError(field, `${JSON.stringify(text)} is not of the form "Name: value"`);
  return { name: text.slice(0, colon).trim(), value: text.slice(colon + 1).trim() };
}

/** Checks a header a caller gives, and returns its value as MailComposer is to be given it. */
function headerValue(h: ComposeHeader, field: string): string {
  if (!FIELD_NAME.test(h.name)) {
    throw new ComposeError(field, `${JSON.stringify(h.name)} is not a header name (printable ASCII without ":" or spaces, at most 76 characters)`);
  }
  const name = h.name.toLowerCase();
  const owned = OWNED_HEADERS[name] ?? (name.startsWith('content-') ? { why: 'the MIME structure sets the Content- fields (RFC 2045 §9)' } : undefined);
  if (owned) throw new ComposeError(field, `header ${h.name} cannot be set here: ${owned.why}`, owned.instead);
  const most = name === 'keywords' || name in ADDRESS_FIELDS ? MAX_PARSED_VALUE : MAX_VALUE;
  if (h.value.length > most) throw new ComposeError(field, `header ${h.name} is ${h.value.length} characters; at most ${most} are taken`);
  checkHeaderText(h.value, field);
  if (h.value.trim() === '') throw new ComposeError(field, `header ${h.name} has an empty value`);
  const date = name === 'date' ? dateTimeToWrite(h.value) : undefined;
  if (date && 'why' in date) throw new ComposeError(field, `Date ${JSON.stringify(h.value)} ${date.why}`);
  const ids = ID_FIELDS[name];
  if (ids && !(ids === 'one' ? ONE_ID : ID_LIST).test(h.value)) {
    const what = ids === 'one' ? 'one message identifier' : 'message identifiers, separated by spaces';
    throw new ComposeError(field, `${h.name} ${JSON.stringify(h.value)} must be ${what} of the form <unique@host>, printable ASCII without spaces, quotes or brackets inside (RFC 5322 §3.6.4)`);
  }
  if (name === 'keywords') return formatPhraseList(h.value);
  const addresses = ADDRESS_FIELDS[name];
  if (!addresses) return h.value;
  try {
    return addresses === 'one' ? formatAddressList([parseSingleAddress(h.value, field)]) : formatAddressList(parseAddressList(h.value, field), emptyGroups([h.value]));
  } catch (err) {
    if (!(err instanceof ComposeError)) throw err;
    throw new ComposeError(field, `header ${h.name}: ${err.message.slice(field.length + 2)}`);
  }
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
/** RFC 5322 §3.3 date-time once its comments are gone, with the obsolete forms §4.3 says must
 *  be read: two- and three-digit years, named zones, white space where CFWS may stand. */
const DATE_TIME = /^(?:([a-z]{3}) ?, ?)?(\d{1,2}) ([a-z]{3}) (\d{2,4}) (\d{2}) ?: ?(\d{2})(?: ?: ?(\d{2}))? (?:[+-]\d{2}(\d{2})|([a-z]{1,3}))$/i;
/** §4.3 obs-zone: UT, GMT, the North American zones, and the military letters (all but J). */
const OBS_ZONE = /^(ut|gmt|[ecmp][sd]t|[a-ik-z])$/i;

/** The same in the syntax RFC 5322 §3.3 lets a message be written in (comments aside). */
const CURRENT_DATE_TIME = /^(?:[a-z]{3}, )?\d{1,2} [a-z]{3} \d{4} \d{2}:\d{2}(?::\d{2})? [+-]\d{4}$/i;
/** §4.3: what the named zones are; a military letter means nothing known, -0000. */
const ZONES: Record<string, string> = { ut: '+0000', gmt: '+0000', est: '-0500', edt: '-0400', cst: '-0600', cdt: '-0500', mst: '-0700', mdt: '-0600', pst: '-0800', pdt: '-0700' };

/**
 * An RFC 5322 date-time naming a real day from 1900 on (and its weekday, when given) and time,
 * as it is to be written: as given when it is in the current syntax, and rewritten in it from
 * the obsolete one (§4.3: read, never generated): a four-digit year, a numeric zone, no white
 * space around the colons. For anything else, why it is not one.
 */
function dateTimeToWrite(value: string): { text: string } | { why: string } {
  const notADate = { why: 'is not a date (RFC 5322 §3.3, e.g. "Tue, 1 Jul 2025 10:00:00 +0000")' };
  const text = withoutComments(value).replace(/\s+/g, ' ').trim();
  const m = DATE_TIME.exec(text);
  if (!m) return notADate;
  const [, dayName, day, monthName, yearText, hour, minute, second, zoneMinutes, zoneName] = m;
  // §4.3: a two-digit year is 2000 + it below 50, else 1900 + it; three digits, 1900 + it.
  const y = Number(yearText);
  const year = yearText!.length === 2 ? (y < 50 ? 2000 + y : 1900 + y) : yearText!.length === 3 ? 1900 + y : y;
  const month = MONTHS.indexOf(monthName!.toLowerCase());
  const date = new Date(Date.UTC(2000, month, Number(day)));
  date.setUTCFullYear(year);
  const valid = month >= 0 && year >= 1900 && date.getUTCDate() === Number(day) && Number(hour) <= 23 && Number(minute) <= 59
    && Number(second ?? 0) <= 60 && Number(zoneMinutes ?? 0) <= 59 && (zoneName === undefined || OBS_ZONE.test(zoneName));
  if (!valid) return notADate;
  const title = (w: string) => w[0]!.toUpperCase() + w.slice(1).toLowerCase();
  if (dayName !== undefined && DAYS.indexOf(dayName.toLowerCase()) !== date.getUTCDay()) {
    const weekday = date.toLocaleDateString('en-US', { weekday: 'long', timeZone: 'UTC' });
    return { why: `names the wrong day of the week: ${Number(day)} ${title(monthName!)} ${year} is a ${weekday}` };
  }
  if (CURRENT_DATE_TIME.test(text)) return { text: value };
  const zone = zoneName === undefined ? text.slice(-5) : ZONES[zoneName.toLowerCase()] ?? '-0000';
  return { text: `${dayName ? `${title(dayName)}, ` : ''}${Number(day)} ${title(monthName!)} ${year} ${hour}:${minute}${second ? `:${second}` : ''} ${zone}` };
}

/** Header text: no line breaks or NUL, no word that could not be folded. */
function checkHeaderText(value: string, field: string): void {
  if (/[\r\n\0]/.test(value)) throw new ComposeError(field, 'contains a line break or NUL');
  // A word beyond ASCII goes out as encoded-words, which are split to fit (RFC 2047 §2); an
  // ASCII one goes as it is.
  const longest = value.split(/[ \t]+/).reduce((n, w) => (w.length > n && /^[\x00-\x7f]*$/.test(w) ? w.length : n), 0);
  if (longest > MAX_WORD) {
    throw new ComposeError(field, `contains a word of ${longest} octets without a space; header lines must stay within ${MAX_LINE} octets (RFC 5322 §2.1.1)`);
  }
}

function checkAttachment(a: ComposeAttachment, field: string): void {
  if (a.filename === '' || /[\x00-\x1f\x7f/\\]/.test(a.filename)) {
    throw new ComposeError(`${field}.filename`, `${JSON.stringify(a.filename)} is not a file name (no path separators or control characters)`);
  }
  if ([...a.filename].length > 255) throw new ComposeError(`${field}.filename`, 'longer than 255 characters');
  if (a.contentType !== undefined && !parseContentType(a.contentType)) {
    throw new ComposeError(`${field}.contentType`, `${JSON.stringify(a.contentType)} is not a content type (type/subtype, then any parameters but name, none of them twice nor in RFC 2231 form (with "*"), as in "text/plain; charset=iso-8859-1")`);
  }
  if (a.cid !== undefined && !/^[!#-'*+\-.-9=?A-Z^-~@]{1,200}$/.test(a.cid)) {
    throw new ComposeError(`${field}.cid`, `${JSON.stringify(a.cid)} is not a Content-ID (printable ASCII without spaces, quotes or brackets)`);
  }
}

export function newMessageId(hostname: string): string {
  return `<${crypto.randomUUID()}@${hostname}>`;
}

/** Composes the message; throws ComposeError for input that cannot make one. */
export async function composeMessage(input: ComposeInput): Promise<ComposedMessage> {
  for (const key of ['from', 'to', 'cc', 'bcc'] as const) {
    const given = input[key];
    const length = given === undefined ? 0 : (Array.isArray(given) ? given : [given]).reduce((n, v) => n + v.length, 0);
    const most = key === 'from' ? MAX_PARSED_VALUE : MAX_PARSED_VALUE * 16;
    if (length > most) throw new ComposeError(key, `${length} characters of addresses; at most ${most} are taken`);
  }
  if (input.subject !== undefined && input.subject.length > MAX_VALUE) throw new ComposeError('subject', `${input.subject.length} characters; at most ${MAX_VALUE} are taken`);
  const from = parseSingleAddress(input.from, 'from');
  const to = input.to?.length ? parseAddressList(input.to, 'to') : [];
  const cc = input.cc?.length ? parseAddressList(input.cc, 'cc') : [];
  const bcc = input.bcc?.length ? parseAddressList(input.bcc, 'bcc') : [];
  const recipients = uniqueAddresses([...to, ...cc, ...bcc].map((a) => a.address));
  if (recipients.length === 0) throw new ComposeError('to', 'at least one recipient is needed in to, cc or bcc');

  const headers = input.headers ?? [];
  const values = headers.map((h, i) => {
    const value = headerValue(h, `headers[${i}]`);
    const name = h.name.toLowerCase();
    if (ONCE.has(name) && headers.findIndex((x) => x.name.toLowerCase() === name) < i) {
      throw new ComposeError(`headers[${i}]`, `header ${h.name} may appear only once (RFC 5322 §3.6)`);
    }
    return value;
  });
  const attachments = input.attachments ?? [];
  attachments.forEach((a, i) => {
    checkAttachment(a, `attachments[${i}]`);
    const first = a.cid === undefined ? i : attachments.findIndex((x) => x.cid === a.cid);
    if (first < i) throw new ComposeError(`attachments[${i}].cid`, `Content-ID ${JSON.stringify(a.cid)} is already that of "attachments[${first}]"; each part needs its own (RFC 2045 §7)`, `attachments[${first}]`);
  });
  if (input.subject !== undefined && /[\r\n\0]/.test(input.subject)) throw new ComposeError('subject', 'contains a line break or NUL');

  const givenId = headers.find((h) => /^message-id$/i.test(h.name))?.value;
  const given = headers.find((h) => /^date$/i.test(h.name))?.value;
  const read = given === undefined ? undefined : dateTimeToWrite(given);
  const givenDate = read && 'text' in read ? read.text : undefined;
  const messageId = givenId ?? newMessageId(input.hostname);
  const custom = headers.map((h, i) => ({ key: h.name, value: values[i]! })).filter((h) => !/^(message-id|date)$/i.test(h.key));
  // The address fields are written here, not by MailComposer, which would quote a display name
  // that looks like an encoded-word instead of encoding it (see formatAddressList): From, To
  // and Cc, then the caller's; so is Keywords, whose phrases it would encode as one text.
  const writtenHere = (key: string) => key.toLowerCase() in ADDRESS_FIELDS || key.toLowerCase() === 'keywords';
  const ownFields = [
    { key: 'From', value: formatAddressList([from]) },
    ...(to.length || emptyGroups(input.to).length ? [{ key: 'To', value: formatAddressList(to, emptyGroups(input.to)) }] : []),
    ...(cc.length || emptyGroups(input.cc).length ? [{ key: 'Cc', value: formatAddressList(cc, emptyGroups(input.cc)) }] : []),
    ...custom.filter((h) => writtenHere(h.key)),
  ];
  const extra = custom.filter((h) => !writtenHere(h.key));

  // A subject holding a word too long to fold goes out as encoded-words, which can be split
  // anywhere (RFC 2047 §2 allows encoding plain ASCII too); so does one holding text that a
  // reader would take for an encoded-word and decode (RFC 2047 §5). MailComposer only encodes
  // non-ASCII.
  let subject = input.subject;
  if (subject !== undefined && (subject.split(/[ \t]+/).some((w) => Buffer.byteLength(w) > MAX_WORD) || ENCODED_WORD.test(subject))) {
    extra.push({ key: 'Subject', value: { prepared: true, foldLines: true, value: encodedWords(subject.split(' ')).join(' ') } as unknown as string });
    subject = undefined;
  }

  const hasText = input.text !== undefined && input.text !== '';
  const hasHtml = input.html !== undefined && input.html !== '';
  const composer = new MailComposer({
    ...(subject !== undefined ? { subject } : {}),
    ...(hasText ? { text: crlfLines(input.text!) } : {}),
    // Attachments without a word of text still go in multipart/mixed, after an empty text part,
    // as mail clients send them: a file alone would be the message itself, and an attached
    // message (message/rfc822) at the top would be read as the one sent.
    ...(!hasText && !hasHtml && attachments.length > 0 ? { text: { raw: 'Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n' } } : {}),
    ...(hasHtml ? { html: crlfLines(input.html!) } : {}),
    attachments: attachments.map(attachmentPart),
    headers: extra,
    messageId,
    date: givenDate ?? rfc5322Date(input.date ?? new Date()),
    newline: 'win',
    // Local files and URLs are never read by the composer: every content is handed in as bytes.
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  const fields = ownFields.map((f) => `${foldLines(`${f.key}: ${f.value}`, 76)}\r\n`).join('');
  const root = composer.compile();
  foldDispositionsApart(root);
  const message = Buffer.concat([Buffer.from(fields, 'utf8'), await root.build()]);
  checkLineLengths(message);
  return { message, sender: from.address, recipients, messageId };
}

/**
 * The attachments' Content-Disposition folded between its parameters only. The library folds a
 * long file name's RFC 2231 sections at the spaces inside their quotes, which RFC 5322 allows but
 * readers that do not unfold (Python's default email policy, compat32) hand back as a file name
 * holding CRLF; the sections are short enough each to stand on a line of its own, which is what
 * RFC 2231's continuations are for.
 */
function foldDispositionsApart(node: MimeNode): void {
  for (const child of node.childNodes) foldDispositionsApart(child);
  if (node.filename === undefined) return;
  const build = node.buildHeaders.bind(node);
  node.buildHeaders = () => build().replace(/(?<=^|\r\n)Content-Disposition:(?:[^\r]|\r\n[ \t])*/i, (field) => foldBetweenParameters(field.replace(/\r\n(?=[ \t])/g, '')));
}

/** A header field (unfolded) folded before its parameters, as many to a line as fit in 76. */
function foldBetweenParameters(field: string): string {
  const parts: string[] = [];
  let quoted = false;
  let start = 0;
  for (let i = 0; i < field.length; i++) {
    const c = field[i];
    if (quoted && c === '\\') i++;
    else if (c === '"') quoted = !quoted;
    else if (c === ';' && !quoted) {
      parts.push(field.slice(start, i + 1).trim());
      start = i + 1;
    }
  }
  parts.push(field.slice(start).trim());
  const lines = [parts[0]!];
  for (const p of parts.slice(1)) {
    if (lines.at(-1)!.length + 1 + p.length > 76) lines.push(` ${p}`);
    else lines[lines.length - 1] += ` ${p}`;
  }
  return lines.join('\r\n');
}

/**
 * The part for an attachment. Its bytes go in base64, so they come back identical, and it is
 * an attachment, not shown inline, unless it is an image the HTML refers to (RFC 2183). A
 * message (message/rfc822, an .eml file) may only be sent in 7bit, 8bit or binary (RFC 2046
 * §5.2.1): one that is text with lines of at most 998 octets goes as it is, in 7bit or 8bit,
 * with CRLF line ends; any other, and any other message/* or multipart/* type, is sent as
 * application/octet-stream in base64. A UTF-8 or UTF-16 text file is labelled so, since a
 * text part without a charset is US-ASCII (RFC 2046 §4.1.2).
 */
function attachmentPart(a: ComposeAttachment): Record<string, unknown> {
  const given = a.contentType !== undefined ? parseContentType(a.contentType)! : { type: contentTypeFor(a.filename), params: {} as Record<string, string> };
  let contentType = given.type;
  let content = a.content;
  let encoding = 'base64';
  if (/^(message|multipart)\//i.test(contentType) && contentType.toLowerCase() !== 'message/rfc822') {
    // Their parts and encodings are for a MIME structure to carry; as bytes, they are a file.
    contentType = OCTET_STREAM;
  } else if (contentType.toLowerCase() === 'message/rfc822') {
    // An mbox "From " line (mutt saves messages with one) is no part of the message.
    const crlf = Buffer.from(crlfLines(content.toString('latin1')).replace(/^From [^\r]*\r\n/, ''), 'latin1');
    const shape = textShape(crlf);
    if (shape) {
      content = crlf;
      encoding = shape;
    } else {
      contentType = OCTET_STREAM;
    }
  } else {
    // The caller's parameters (a charset) are part of the type's meaning.
    for (const [name, value] of Object.entries(given.params)) contentType += `; ${name}=${parameterValue(value)}`;
    if (/^text\//i.test(contentType) && !('charset' in given.params)) {
      // UTF-8 is known by its bytes, UTF-16 by its byte order mark (RFC 2781 §3.3); a text in
      // another charset says none, as nothing tells which one it is.
      if (content[0] === 0xfe && content[1] === 0xff || content[0] === 0xff && content[1] === 0xfe) contentType += '; charset=utf-16';
      else if (content.some((c) => c >= 0x80) && isUtf8(content)) contentType += '; charset=utf-8';
    }
  }
  return {
    filename: a.filename,
    content,
    contentType,
    contentTransferEncoding: encoding,
    contentDisposition: a.cid === undefined ? 'attachment' : 'inline',
    ...(a.cid !== undefined ? { cid: a.cid } : {}),
  };
}

/** '7bit' or '8bit' for text without NUL in lines (CRLF) of at most MAX_LINE octets; undefined
 *  for anything else (RFC 2045 §2.7, §2.8). */
function textShape(b: Buffer): '7bit' | '8bit' | undefined {
  if (b.includes(0)) return undefined;
  let start = 0;
  for (let end = b.indexOf('\r\n'); end >= 0; end = b.indexOf('\r\n', start)) {
    if (end - start > MAX_LINE) return undefined;
    start = end + 2;
  }
  if (b.length - start > MAX_LINE) return undefined;
  return b.some((c) => c >= 0x80) ? '8bit' : '7bit';
}

/**
 * CRLF, lone CR and lone LF all become CRLF: text's canonical form (RFC 2046 §4.1.1), which a
 * part in base64 carries as it is (RFC 2045 §6.8); RFC 5322 §2.3 allows no bare CR or LF.
 */
function crlfLines(text: string): string {
  return text.replace(/\r\n?|\n/g, '\r\n');
}

/** Throws when a line of the composed message is over 998 octets (a guard; input checks come first). */
export function checkLineLengths(message: Buffer): void {
  let start = 0;
  let line = 1;
  while (start < message.length) {
    let end = message.indexOf('\r\n', start);
    if (end < 0) end = message.length;
    if (end - start > MAX_LINE) throw new ComposeError('message', `line ${line} is ${end - start} octets long; at most ${MAX_LINE} are allowed (RFC 5322 §2.1.1)`);
    start = end + 2;
    line++;
  }
}
