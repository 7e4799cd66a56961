/**
 * Mailbox syntax of RFC 5321 §4.1.2, with RFC 6531 §3.3's UTF-8: whether a client may use an
 * address beyond ASCII (it said SMTPUTF8) is the caller's to judge, by `Mailbox.utf8`.
 *
 *   Path = "<" [ A-d-l ":" ] Mailbox ">"      Mailbox = Local-part "@" ( Domain / address-literal )
 *   Local-part = Dot-string / Quoted-string
 *
 * Source routes (A-d-l) are accepted and ignored as §4.1.2 / Appendix C require, so
 * `<@local:u@remote>` is what it really is: mail for u@remote.
 */
import net from 'node:net';
import { isAscii } from '../ascii.ts';

export interface Mailbox {
  /** The local part as given on the wire (quoted form kept when it needs quoting). */
  local: string;
  /** The domain, or the address literal with its brackets. */
  domain: string;
  /** True when the local part or domain contains non-ASCII (needs SMTPUTF8, RFC 6531). */
  utf8: boolean;
}

export type PathResult =
  | { ok: true; mailbox: Mailbox | null; rest: string } // mailbox null: the null path <>
  | { ok: false; message: string };

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]$/;
const LDH = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const ULABEL = /^[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}-]{0,61}[\p{L}\p{N}\p{M}])?$/u;

export function formatMailbox(m: Mailbox): string {
  return `${m.local}@${m.domain}`;
}

/**
 * Parses `<path>` at the start of `text` (the argument of MAIL FROM: / RCPT TO:). Returns the
 * mailbox and what follows the closing bracket (the ESMTP parameters).
 */
export function parsePath(text: string, opts: { allowNull: boolean }): PathResult {
  if (!text.startsWith('<')) return { ok: false, message: 'address must be enclosed in <>' };
  const close = findClose(text);
  if (close < 0) return { ok: false, message: 'missing > after the address' };
  let inner = text.slice(1, close);
  const rest = text.slice(close + 1);
  if (rest !== '' && !rest.startsWith(' ')) return { ok: false, message: 'expected a space after the address' };
  if (inner === '') {
    if (!opts.allowNull) return { ok: false, message: 'the null address <> is not allowed here' };
    return { ok: true, mailbox: null, rest: rest.trim() };
  }
  if (inner.startsWith('@')) {
    // A-d-l = At-domain *( "," At-domain ) ":"  — checked, then ignored (§4.1.2, Appendix C).
    const colon = inner.indexOf(':');
    if (colon < 0) return { ok: false, message: 'source route without ":"' };
    for (const hop of inner.slice(0, colon).split(',')) {
      if (!hop.startsWith('@') || !isDomain(hop.slice(1))) return { ok: false, message: 'bad source route' };
    }
    inner = inner.slice(colon + 1);
  }
  const parsed = parseMailbox(inner);
  if (typeof parsed === 'string') return { ok: false, message: parsed };
  return { ok: true, mailbox: parsed, rest: rest.trim() };
}

/** Index of the ">" that closes the path, skipping quoted strings; -1 when absent. */
function findClose(text: string): number {
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '>') return i;
  }
  return -1;
}

/** The longest mailbox: a path of 256 octets without its angle brackets. */
const MAX_MAILBOX = 254;

/** Parses `local@domain`; returns an error message when it is not a valid mailbox. */
export function parseMailbox(text: string): Mailbox | string {
  let local: string;
  let domainPart: string;
  if (text.startsWith('"')) {
    let i = 1;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (c === '\\') {
        i++;
        if (i >= text.length || !isQtextSmtpOrPair(text[i]!, true)) return 'bad escape in quoted local part';
      } else if (c === '"') break;
      else if (!isQtextSmtpOrPair(c, false)) return 'bad character in quoted local part';
    }
    if (i >= text.length) return 'unterminated quoted local part';
    local = text.slice(0, i + 1);
    if (text[i + 1] !== '@') return 'expected @ after the local part';
    domainPart = text.slice(i + 2);
  } else {
    const at = text.lastIndexOf('@');
    if (at < 0) return 'address must have the form local-part@domain';
    local = text.slice(0, at);
    domainPart = text.slice(at + 1);
    if (!isDotString(local)) return `bad local part "${local}"`;
  }
  // RFC 5321 §4.5.3.1 asks for no limits where none are needed: SRS, VERP and BATV senders have
  // local parts longer than the 64 octets of §4.5.3.1.1, so only the path's 256 octets
  // (§4.5.3.1.3, the angle brackets included) bound an address.
  if (Buffer.byteLength(text) > MAX_MAILBOX) return `address longer than ${MAX_MAILBOX} octets (RFC 5321 section 4.5.3.1.3)`;
  if (domainPart.startsWith('[')) {
    if (!isAddressLiteral(domainPart)) return `bad address literal ${domainPart}`;
  } else if (!isDomain(domainPart)) {
    return domainPart.endsWith('.') ? `domain "${domainPart}" must not end with a dot` : `bad domain "${domainPart}"`;
  }
  return { local, domain: domainPart, utf8: !isAscii(text) };
}

function isDotString(s: string): boolean {
  if (s === '' || s.startsWith('.') || s.endsWith('.') || s.includes('..')) return false;
  for (const c of s) {
    if (c === '.') continue;
    if (ATEXT.test(c)) continue;
    if (c.codePointAt(0)! > 0x7f) continue; // RFC 6531 §3.3 atext =/ UTF8-non-ascii
    return false;
  }
  return true;
}

/** qtextSMTP = %d32-33 / %d35-91 / %d93-126; quoted-pairSMTP = "\" %d32-126; both with
 *  UTF8-non-ascii (RFC 6531 §3.3). */
function isQtextSmtpOrPair(c: string, pair: boolean): boolean {
  const code = c.codePointAt(0)!;
  if (code > 0x7f) return true;
  if (pair) return code >= 32 && code <= 126;
  return code === 32 || code === 33 || (code >= 35 && code <= 91) || (code >= 93 && code <= 126);
}

function isDomain(s: string): boolean {
  if (s === '' || Buffer.byteLength(s) > 255) return false;
  const labels = s.split('.');
  return labels.every((l) => LDH.test(l) || ULABEL.test(l));
}

/** address-literal = "[" ( IPv4-address-literal / IPv6-address-literal / General-address-literal ) "]" */
function isAddressLiteral(s: string): boolean {
  if (!s.endsWith(']')) return false;
  const inner = s.slice(1, -1);
  if (/^IPv6:/i.test(inner)) return net.isIPv6(inner.slice(5));
  return net.isIPv4(inner);
}

/** The mailbox with the least quoting it needs (RFC 5321 §4.1.2 asks senders for that form):
 *  `"bob"@example.com` is written bob@example.com, the same mailbox; `"a b"@x` keeps its quotes. */
export function plainForm(m: Mailbox): string {
  const bare = unquoteLocal(m.local);
  return `${m.local.startsWith('"') && isDotString(bare) ? bare : m.local}@${m.domain}`;
}

/** The local part without quoting: `"a b"` becomes `a b`, for lookups. */
export function unquoteLocal(local: string): string {
  if (!local.startsWith('"')) return local;
  return local.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** The address used for lookups: the local part unquoted, so `"me"@example.com` is `me`'s
 *  (RFC 5321 §4.1.2 makes the two one mailbox), and `"u@x"@local` is one odd local part. */
export function lookupAddress(m: Mailbox): string {
  return `${unquoteLocal(m.local)}@${m.domain}`;
}
