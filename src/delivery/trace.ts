/** Trace headers added on acceptance: Received (RFC 5321 §4.4) and Return-Path (§4.4). */
import { asciiAddress } from '../ascii.ts';
import { withoutFields } from '../mime/header-section.ts';

export interface ReceivedInfo {
  /** The HELO/EHLO name the client gave, if any. */
  helo?: string;
  /** The client's IP address. */
  clientIp?: string;
  /** Our host name. */
  by: string;
  /** The WITH protocol keyword: SMTP, ESMTP, ESMTPS, ESMTPSA, ESMTPA (RFC 3848), UTF8SMTP… (RFC
   *  6531 §3.7.3), or "local"/"HTTP". */
  with: string;
  /** TLS protocol and cipher, noted in a comment. */
  tls?: string;
  /** The authenticated user, noted in a comment (of the copies kept here only: acceptMessage). */
  auth?: string;
  id: string;
  /** Named only when there is a single recipient (no Bcc disclosure). */
  for?: string;
  date: Date;
}

/** RFC 5322 §3.3 date-time, e.g. "Sun, 22 Nov 2026 05:01:02 +0000". */
export function rfc5322Date(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]}, ${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

export function receivedHeader(r: ReceivedInfo): string {
  const from = r.helo !== undefined || r.clientIp !== undefined
    ? `from ${heloText(r.helo ?? 'unknown')}${r.clientIp ? ` (${addressLiteral(r.clientIp)})` : ''}\r\n\t`
    : '';
  // The user's address in A-labels when it has them (a user of an internationalised domain, as
  // `user add` keeps it): this field is mailnest's own, and UTF-8 in it would make the user's
  // every message 8-bit, and one a header may hold only under SMTPUTF8 (RFC 6532 §3).
  const auth = r.auth === undefined ? undefined : asciiAddress(r.auth) ?? r.auth;
  const notes = [r.tls ? `using ${r.tls}` : '', auth ? `authenticated as ${commentText(auth)}` : ''].filter(Boolean);
  const comment = notes.length ? ` (${notes.join('; ')})` : '';
  const forPart = r.for ? `\r\n\tfor <${pathText(r.for)}>` : '';
  return `Received: ${from}by ${r.by} (mailnest) with ${r.with} id ${r.id}${comment}${forPart};\r\n\t${rfc5322Date(r.date)}\r\n`;
}

export function returnPathHeader(sender: string): string {
  return `Return-Path: <${pathText(sender)}>\r\n`;
}

/** The message without Return-Path fields: the one a final delivery adds (above) is the
 *  envelope's, and any already in the message came from whoever wrote it. RFC 5321 §4.4 lets a
 *  final delivery remove them and asks originators not to send them. A message is stored once
 *  for its local copies and the ones it is sent on in, so the copies an alias forwards lose them
 *  too, where §4.4 would have a pure relay leave them: Postfix's cleanup removes them from all
 *  mail it takes in, for the same reason. */
export function withoutReturnPath(message: Buffer[]): Buffer[] {
  return withoutFields(message, /return-path/i, (f) => /^return-path[ \t]*:/i.test(f));
}

/** The client's HELO name, which should be a domain or an address literal: printable ASCII only
 *  (RFC 6531 §3.7.1 wants A-labels even under SMTPUTF8), and no "(", ")" or ";", which would
 *  end the clause early or pass for the date's separator. */
function heloText(s: string): string {
  return s.replace(/[^\x21-\x7e]|[();\\]/g, '?').slice(0, 255);
}

/** The client's address in TCP-info: an address literal (RFC 5321 §4.1.3), tagged when IPv6. */
function addressLiteral(ip: string): string {
  return ip.includes(':') ? `[IPv6:${ip}]` : `[${ip}]`;
}

/** Client-supplied text in a comment: no CR/LF, and no parentheses or backslash, which would
 *  end the comment early or quote what follows (RFC 5322 §3.2.2). */
function commentText(s: string): string {
  return s.replace(/[\r\n()\\]/g, '?').slice(0, 255);
}

/** An envelope address as it was given (RFC 5321 §4.4: Return-Path holds the reverse-path), its
 *  quoted local part with its quoted pairs and parentheses included: every path is parsed to RFC
 *  5321 §4.1.2 before it gets here, so that this only guards the header against a line end. */
function pathText(address: string): string {
  return address.replace(/[\r\n]/g, '?');
}
