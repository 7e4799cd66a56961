/**
 * MAIL FROM and RCPT TO arguments: the path and the parameters mailnest supports —
 * SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461),
 * AUTH (RFC 4954 §5). Sans-I/O; each problem comes back as the reply to give.
 */
import { asciiUpper, hasControlCharacters } from '../ascii.ts';
import type { DsnEnvelope, DsnRecipient } from '../store/store.ts';
import { parsePath, type Mailbox, type PathResult } from './address.ts';
import { parseParams } from './command.ts';
import { reply, type Reply } from './reply.ts';
import { decodeUtf8Address, decodeXtext } from './xtext.ts';

export interface MailFrom {
  /** null for the null reverse-path <>. */
  sender: Mailbox | null;
  declaredSize?: number;
  utf8: boolean;
  body?: '7BIT' | '8BITMIME';
  dsn: DsnEnvelope;
}

export interface RcptTo {
  recipient: Mailbox;
  dsn: DsnRecipient;
}

const FROM = /^FROM: ?/i;
const TO = /^TO: ?/i;

/** A path of a user name alone, `<root>`: what callers of the sendmail command write. */
const BARE_NAME = /^<([^\s<>@":\\]+)>(?= |$)/;

/** The path with `domain` added to a user name alone; any other path as it is. */
function completed(text: string, domain: string | undefined): string {
  const m = domain === undefined ? null : BARE_NAME.exec(text);
  return m ? `<${m[1]}@${domain}>${text.slice(m[0].length)}` : text;
}

/**
 * `esmtp`: the session began with EHLO (RFC 5321 §4.1.1.11: after HELO no extension is in
 * effect, so a parameter is one the server does not recognise, 555). `bareDomain`: given, a
 * user name without a domain (`<root>`) is taken to be at it, as the sendmail command takes it
 * (`sendmail -bs`); otherwise such a path is bad syntax (RFC 5321 §4.1.2).
 */
export function parseMailFrom(args: string, maxSize: number, esmtp: boolean, bareDomain?: string): MailFrom | Reply {
  const m = FROM.exec(args);
  if (!m) return reply(501, '5.5.4', 'Syntax: MAIL FROM:<address> [parameters]');
  const path = parsePath(completed(args.slice(m[0].length), bareDomain), { allowNull: true });
  if (!path.ok) return reply(501, '5.1.7', `Bad sender address syntax: ${path.message}`);
  const params = parseParams(path.rest);
  if (!params.ok) return reply(501, '5.5.4', `Bad MAIL FROM parameters: ${params.message}`);
  if (!esmtp && params.params.size > 0) return reply(555, '5.5.4', 'MAIL FROM parameters need EHLO');
  const utf8 = params.params.has('SMTPUTF8');
  if (path.mailbox?.utf8 && !utf8) return reply(553, '5.6.7', 'Non-ASCII sender address needs the SMTPUTF8 parameter (RFC 6531)');

  const from: MailFrom = { sender: path.mailbox, utf8, dsn: {} };
  for (const [key, value] of params.params) {
    switch (key) {
      case 'SIZE': {
        if (typeof value !== 'string' || !/^\d{1,20}$/.test(value)) return reply(501, '5.5.4', 'SIZE needs a number of octets');
        const size = Number(value);
        if (size > maxSize) return reply(552, '5.3.4', `Message size exceeds the limit of ${maxSize} octets`);
        from.declaredSize = size;
        break;
      }
      case 'BODY': {
        // A value of RFC 3030's that mailnest does not offer is 555 (RFC 5321 §4.1.1.11); one that
        // no extension defines is bad syntax, 501, as for every parameter below.
        const v = typeof value === 'string' ? asciiUpper(value) : '';
        if (v === 'BINARYMIME') return reply(555, '5.5.4', 'BODY=BINARYMIME is not supported; BODY must be 7BIT or 8BITMIME');
        if (v !== '7BIT' && v !== '8BITMIME') return reply(501, '5.5.4', 'BODY must be 7BIT or 8BITMIME');
        from.body = v;
        break;
      }
      case 'SMTPUTF8':
        if (value !== true) return reply(501, '5.5.4', 'SMTPUTF8 takes no value');
        break;
      case 'RET': {
        const v = typeof value === 'string' ? asciiUpper(value) : '';
        if (v !== 'FULL' && v !== 'HDRS') return reply(501, '5.5.4', 'RET must be FULL or HDRS');
        from.dsn.ret = v;
        break;
      }
      case 'ENVID': {
        const v = typeof value === 'string' ? decodeXtext(value) : undefined;
        // RFC 3461 §4.4: decoded, printable US-ASCII (it goes into the DSN's Original-Envelope-Id).
        if (v === undefined || v.length > 100 || !/^[\x20-\x7e]*$/.test(v)) {
          return reply(501, '5.5.4', 'ENVID must be xtext of at most 100 characters, printable US-ASCII once decoded (RFC 3461 section 4.4)');
        }
        from.dsn.envid = v;
        break;
      }
      case 'AUTH':
        // RFC 4954 §5: the original submitter; recorded by nobody here, but it must not fail.
        break;
      default:
        return reply(555, '5.5.4', `MAIL FROM parameter ${key} is not supported`);
    }
  }
  return from;
}

/** RFC 5321 §4.1.1.3: `<Postmaster>`, without a domain, names the postmaster of this server. */
const BARE_POSTMASTER = /^<postmaster>(?= |$)/i;

/** `postmasterDomain`: the local domain that a bare `<Postmaster>` is taken to be in;
 *  `esmtp` and `bareDomain`: as for parseMailFrom. */
export function parseRcptTo(args: string, utf8: boolean, postmasterDomain: string, esmtp: boolean, bareDomain?: string): RcptTo | Reply {
  const m = TO.exec(args);
  if (!m) return reply(501, '5.5.4', 'Syntax: RCPT TO:<address> [parameters]');
  const text = args.slice(m[0].length);
  const bare = BARE_POSTMASTER.exec(text);
  const path: PathResult = bare
    ? { ok: true, mailbox: { local: 'postmaster', domain: postmasterDomain, utf8: false }, rest: text.slice(bare[0].length).trim() }
    : parsePath(completed(text, bareDomain), { allowNull: false });
  if (!path.ok) {
    return reply(501, '5.1.3', /null address/.test(path.message) ? 'The null address <> is not a recipient' : `Bad recipient address syntax: ${path.message}`);
  }
  const recipient = path.mailbox!;
  if (recipient.utf8 && !utf8) return reply(553, '5.6.7', 'Non-ASCII recipient address needs SMTPUTF8 in MAIL FROM (RFC 6531)');
  const params = parseParams(path.rest);
  if (!params.ok) return reply(501, '5.5.4', `Bad RCPT TO parameters: ${params.message}`);
  if (!esmtp && params.params.size > 0) return reply(555, '5.5.4', 'RCPT TO parameters need EHLO');
  const dsn: DsnRecipient = {};
  for (const [key, value] of params.params) {
    switch (key) {
      case 'NOTIFY': {
        const list = typeof value === 'string' ? asciiUpper(value).split(',') : [];
        const allowed = ['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'];
        if (list.length === 0 || list.some((v) => !allowed.includes(v)) || (list.includes('NEVER') && list.length > 1) || new Set(list).size !== list.length) {
          return reply(501, '5.5.4', 'NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 section 4.1)');
        }
        dsn.notify = list as DsnRecipient['notify'];
        break;
      }
      case 'ORCPT': {
        const v = typeof value === 'string' ? value : '';
        const semi = v.indexOf(';');
        const type = v.slice(0, semi);
        // RFC 6533 §3: the utf-8 type has its own encoding; every other, xtext.
        const decoded = semi <= 0 ? undefined : asciiUpper(type) === 'UTF-8' ? decodeUtf8Address(v.slice(semi + 1), utf8) : decodeXtext(v.slice(semi + 1));
        // No control character once decoded (C1 ones too: octets that are not UTF-8 read as
        // Latin-1): it goes into the DSN's Original-Recipient field.
        if (semi <= 0 || decoded === undefined || !/^[A-Za-z0-9-]+$/.test(type) || hasControlCharacters(decoded)) {
          return reply(501, '5.5.4', 'ORCPT must be addr-type;xtext (RFC 3461 section 4.2), or utf-8;address with \\x{HEX} escapes (RFC 6533 section 3)');
        }
        dsn.orcpt = `${type};${decoded}`;
        break;
      }
      default:
        return reply(555, '5.5.4', `RCPT TO parameter ${key} is not supported`);
    }
  }
  return { recipient, dsn };
}
