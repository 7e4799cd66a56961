/**
 * A message handed in whole on stdin (the sendmail interface), made fit to accept:
 *
 * - input ends at EOF, or — unless -i/-oi — at a line holding a single "." (sendmail(8));
 *   there is no dot-unstuffing, that belongs to SMTP only;
 * - bare LF, bare CR and CRLF become CRLF; a leading mbox "From " line is dropped;
 * - the header section ends at the first empty line, or at the first line that is neither a
 *   header field nor a continuation (a blank line is then put in, RFC 5322 §3.5);
 * - with -t the recipients are taken from To, Cc and Bcc, or from Resent-To, Resent-Cc and
 *   Resent-Bcc when a Resent- field is there (added to those given as arguments, as Postfix
 *   does); Bcc and Resent-Bcc are removed, From, Date and Message-ID added when missing
 *   (submission.ts), and a Return-Path goes as from any message (delivery/trace.ts);
 *   raw 8-bit text in the Subject and other text fields, and in the display names of address
 *   fields, is turned into RFC 2047 encoded-words (its bytes read as UTF-8, or as Latin-1 when
 *   they are not UTF-8), so that the header is ASCII; a NUL in any other field is refused;
 * - header lines over 998 octets are folded before white space, and the body is made fit to
 *   send, by line-length.ts: one that is not MIME but holds 8-bit bytes,
 *   NUL or lines over 998 octets becomes quoted-printable text, so what cron or a script printed
 *   arrives intact, and so does a MIME message of one text part with long lines (cron's); any
 *   other MIME message with such lines is refused; a MIME message gets the MIME-Version it
 *   lacks, and `8bit` as its transfer encoding when it has none and holds 8-bit text.
 *
 * Addresses without a domain ("root", as cron writes them) get the first local domain, as
 * Postfix's append_at_myorigin does: in the recipients, and in the address fields.
 */
import { isUtf8 } from 'node:buffer';
import addressparser from 'nodemailer/lib/addressparser';
import MimeNode from 'nodemailer/lib/mime-node';
import { foldLines } from 'nodemailer/lib/mime-funcs';
import { encodedWords } from './encoded-words.ts';
import { isAscii } from '../ascii.ts';
import { parseMailbox } from '../smtp/address.ts';
import { hasStrayName, notAList, uniqueAddresses } from './addresses.ts';
import { fitBody, fitHeader, UnfitLineError, needsEncoding, splitFields, type Field } from './line-length.ts';
import { DROPPED_FIELD, isEmptyWritten, missingFields } from './submission.ts';
import { ADDRESS_FIELD, ENCODED_WORD, headerEnd } from './header-section.ts';
import { eachPiece } from './structured-value.ts';
import { splitAt } from '../chunks.ts';

export type SubmittedProblem = 'usage' | 'data';

export class SubmittedError extends Error {
  readonly problem: SubmittedProblem;
  constructor(problem: SubmittedProblem, message: string) {
    super(message);
    this.problem = problem;
  }
}

export interface SubmittedOptions {
  /** -i / -oi: a lone "." does not end the input. */
  ignoreDots: boolean;
  /** -t: recipients from the To, Cc and Bcc fields (or their Resent- kin) too. */
  extractRecipients: boolean;
  /** Recipients given as arguments (each may be a comma-separated list). */
  recipients: string[];
  /** -f: the envelope sender ('' or '<>' for the null sender). */
  sender?: string;
  /** -F: the full name for a From field that has to be added. */
  fullName?: string;
  /** The sender when -f is not given (e.g. the login name). */
  defaultSender: string;
  /** Appended to addresses without "@". */
  domain: string;
  hostname: string;
  now?: Date;
}

export interface SubmittedMessage {
  message: Buffer;
  sender: string;
  recipients: string[];
  /** The octets that making its lines fit added (quoted-printable, folded header lines). */
  reencoded: number;
}

/** Splits input into lines at CRLF, LF or a lone CR (a lone CR is no line end on the wire, RFC
 *  5322 §2.3, and a progress bar in cron output is full of them); CRs before an LF are one line
 *  end with it (CR CR LF is what a program that writes CRLF through a layer that turns LF into
 *  CRLF puts out, as Postfix's sendmail reads it); the last line needs no terminator. */
function splitLines(input: Buffer): Buffer[] {
  const lines: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i];
    if (c !== 0x0a && c !== 0x0d) continue;
    lines.push(input.subarray(start, i));
    if (c === 0x0d) {
      let j = i;
      while (input[j + 1] === 0x0d) j++;
      if (input[j + 1] === 0x0a) i = j + 1;
    }
    start = i + 1;
  }
  if (start < input.length) lines.push(input.subarray(start));
  return lines;
}

export function qualify(address: string, domain: string): string {
  return address.includes('@') ? address : `${address}@${domain}`;
}

/** Parses an address list (header value or argument); throws SubmittedError naming `where`. */
export function parseRecipients(value: string, where: string, domain: string): string[] {
  const out: string[] = [];
  if (hasStrayName(value)) throw new SubmittedError('data', `${where}: ${notAList(value)}`);
  for (const a of addressparser(value, { flatten: true })) {
    // A bare user name ("root") comes back from the parser as a display name.
    let bare = a.address.trim();
    if (bare === '' && /^[^\s@<>",;:]+$/.test(a.name.trim())) bare = a.name.trim();
    const address = qualify(bare, domain);
    if (bare === '' || typeof parseMailbox(address) === 'string') {
      throw new SubmittedError('data', `${where}: ${JSON.stringify(bare || value.trim())} is not a valid address`);
    }
    out.push(address);
  }
  return out;
}

/** An addr-spec without "@": `root`, `ops.team`. */
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$/;

/**
 * The field's value with the domain added to each address that has none (cron writes `To:
 * root`, and `To: me, bob` for MAILTO=me,bob; Postfix's append_at_myorigin does the same), or
 * undefined when none lacks one. The value is walked as RFC 5322 §3.4 reads it, so a comma in a
 * quoted name or a comment does not split it; everything but the added domains stays as written.
 */
function qualifyField(value: string, domain: string): string | undefined {
  let out = '';
  let changed = false;
  // The entry under way: its text outside quotes, comments and angle brackets, where that text
  // ends in `out`, and whether it had a quoted string or an angle address.
  let plain = '';
  let plainEnd = 0;
  let named = false;
  let inAngle = false;
  const endEntry = () => {
    // One bare word, maybe with comments: `root`, `root (Cron Daemon)`.
    if (!named && LOCAL_PART.test(plain.trim())) {
      out = `${out.slice(0, plainEnd)}@${domain}${out.slice(plainEnd)}`;
      changed = true;
    }
    plain = '';
    named = false;
  };
  eachPiece(value, (kind, start, end) => {
    if (kind !== 'text') {
      if (kind === 'quoted') named = true;
      out += value.slice(start, end);
      return;
    }
    for (let i = start; i < end; i++) {
      const c = value[i]!;
      if (inAngle) {
        inAngle = c !== '>';
      } else if (c === '<') {
        named = true;
        const close = value.indexOf('>', i);
        const inner = close < 0 || close > end ? '' : value.slice(i + 1, close).trim();
        if (LOCAL_PART.test(inner)) {
          out += `<${inner}@${domain}>`;
          changed = true;
          i = close;
          continue;
        }
        inAngle = true;
      } else if (c === ',' || c === ';') {
        endEntry();
      } else if (c === ':') {
        // A group's name (RFC 5322 §3.4) is no address; its list ends at ";".
        plain = '';
        named = false;
      } else {
        plain += c;
        if (c !== ' ' && c !== '\t') plainEnd = out.length + 1;
      }
      out += c;
    }
  });
  endEntry();
  return changed ? out : undefined;
}

/** Fields of unstructured text (RFC 5322 §3.6.5, §3.6.8; RFC 2076's Organization), and the
 *  Keywords phrase list, whose words may be encoded-words (RFC 2047 §5). */
const TEXT_FIELD = /^(?:subject|comments|keywords|organization|x-.*)$/i;

/**
 * A field as the sendmail command hands it on: the addresses of an address field that lack a
 * domain get `domain`; 8-bit text (or a NUL) in a text field, and the display names of an
 * address field whose addresses are ASCII, become encoded-words (RFC 2047), so the header is
 * ASCII and the message needs no SMTPUTF8 on its way (RFC 6531 §3.4). A NUL anywhere else is
 * refused: no header may hold one (RFC 5322 §2.2). The same object when nothing changes.
 */
function editedField(f: Field, domain: string): Field {
  const eightBit = f.lines.some(needsEncoding);
  if (eightBit && TEXT_FIELD.test(f.name)) {
    // Keywords' phrases each apart: its commas stay outside every encoded-word (RFC 2047 §5(3)).
    const text = /^keywords$/i.test(f.name) ? fieldValue(f).split(',').map((p) => encodedText(p.trim())).join(', ') : encodedText(fieldValue(f));
    return { name: f.name, lines: headerLine(`${f.name}: ${text}`) };
  }
  if (eightBit && f.lines.some((l) => l.includes(0))) {
    throw new SubmittedError('data', `the ${f.name} field holds a NUL, which no header field may (RFC 5322 §2.2)`);
  }
  if (!ADDRESS_FIELD.test(f.name)) return f;
  const value = fieldValue(f);
  const qualified = qualifyField(value, domain);
  const utf8Names = () => !hasStrayName(value) && addressparser(value, { flatten: true }).every((a) => isAscii(a.address));
  if (eightBit && (!isUtf8(Buffer.concat(f.lines)) || utf8Names())) {
    // nodemailer encodes the names of an address list only for the fields it knows as such;
    // the others' addresses would end up inside an encoded-word.
    const known = /^errors-to$/i.test(f.name) ? 'Reply-To' : f.name.replace(/^resent-/i, '');
    return { name: f.name, lines: headerLine(`${f.name}: ${MimeNode.encodeHeaderValue(known, qualified ?? value)}`) };
  }
  return qualified ? { name: f.name, lines: headerLine(`${f.name}: ${qualified}`) } : f;
}

/**
 * The header of a message a local program handed over SMTP (`sendmail -bs`), with its fields
 * edited as the sendmail command edits them (editedField): `From: www-data`, `To: root` get the
 * domain there too. The same chunks when nothing changes; the body's chunks are passed on.
 */
export function withLocalHeader(message: Buffer[], domain: string): Buffer[] {
  const { end } = headerEnd(message);
  const [header, rest] = splitAt(message, end);
  const { fields } = splitFields(splitLines(header));
  const edited = fields.map((f) => editedField(f, domain));
  if (edited.every((f, i) => f === fields[i])) return message;
  const crlf = Buffer.from('\r\n');
  return [Buffer.concat(edited.flatMap((f) => f.lines.flatMap((l) => [l, crlf]))), ...rest];
}

/** A word that goes out as an encoded-word: 8-bit text, or a NUL (as needsEncoding says). */
const encoded = (word: string) => /[^\x01-\x7f]/.test(word);

/** An encoded-word (RFC 2047 §2) standing as a word of its own. */
const isEncodedWord = (word: string) => ENCODED_WORD.exec(word)?.[0] === word;

/**
 * Unstructured text (RFC 5322 §3.2.5) with its words of 8-bit text as encoded-words (RFC 2047
 * §5(1)), each run of them one, and everything else as written: encoded-words already there stay
 * as they are (PHP code writes "Re: " + an encoded subject + raw text). White space between two
 * encoded-words is not shown (§6.2), so the space that parts a new one from one already there
 * goes inside the new one too.
 */
function encodedText(value: string): string {
  // Words parted by single spaces: a run of spaces leaves empty words between, and a tab stays
  // inside its word, so that joined again they are the text as written.
  const words = value.split(' ');
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    if (!encoded(words[i]!)) {
      out.push(words[i]!);
      continue;
    }
    // The run goes on over spaces, however many, to the last word to encode: the spaces between
    // two encoded-words would not be shown (RFC 2047 §6.2), inside one they are.
    let j = i;
    for (let k = i + 1; k < words.length && (words[k] === '' || encoded(words[k]!)); k++) if (words[k] !== '') j = k;
    // (An empty word at an end of the run is the space beside an encoded-word already there.)
    const run = [...(i > 0 && isEncodedWord(words[i - 1]!) ? [''] : []), ...words.slice(i, j + 1), ...(j + 1 < words.length && isEncodedWord(words[j + 1]!) ? [''] : [])];
    out.push(...encodedWords(run));
    i = j;
  }
  return out.join(' ');
}

/** The unfolded value (RFC 5322 §2.2.3: only the line breaks go, the white space stays as
 *  written), without the white space around it; raw 8-bit text is read as UTF-8 when it is
 *  that, else as Latin-1. */
function fieldValue(f: Field): string {
  const raw = Buffer.concat(f.lines);
  return raw.toString(isUtf8(raw) ? 'utf8' : 'latin1').slice(f.name.length).replace(/^[ \t]*:/, '').trim();
}

function headerLine(text: string): Buffer[] {
  return foldLines(text, 76).split('\r\n').map((l) => Buffer.from(l, 'utf8'));
}

export function prepareSubmitted(input: Buffer, o: SubmittedOptions): SubmittedMessage {
  let lines = splitLines(input);
  if (!o.ignoreDots) {
    const dot = lines.findIndex((l) => l.length === 1 && l[0] === 0x2e);
    if (dot >= 0) lines = lines.slice(0, dot);
  }
  if (lines.length > 0 && lines[0]!.subarray(0, 5).toString('latin1') === 'From ') lines = lines.slice(1);

  // Header section.
  const { fields: given, body } = splitFields(lines);
  const fields = given.filter((f) => !isEmptyWritten(f.name, fieldValue(f)));
  const has = (name: string) => fields.some((f) => f.name.toLowerCase() === name);
  const values = (name: string) => fields.filter((f) => f.name.toLowerCase() === name).map(fieldValue);

  // Envelope.
  let sender: string;
  if (o.sender === undefined) sender = qualify(o.defaultSender, o.domain);
  else if (o.sender === '' || o.sender === '<>') sender = '';
  else {
    // `-f '<addr>'`, and `-f 'Name <addr>'` as some scripts give it: the address, as Postfix's
    // sendmail takes it.
    const s = (/<([^<>]*)>\s*$/.exec(o.sender)?.[1] ?? o.sender).trim();
    sender = s === '' ? '' : qualify(s, o.domain);
    if (sender !== '' && typeof parseMailbox(sender) === 'string') throw new SubmittedError('data', `-f ${JSON.stringify(o.sender)} is not a valid address`);
  }
  const recipients: string[] = [];
  for (const arg of o.recipients) recipients.push(...parseRecipients(arg, `recipient ${JSON.stringify(arg)}`, o.domain));
  // A message sent on again (RFC 5322 §3.6.6) goes to its Resent- recipients, not to those it
  // first went to, as in Postfix and sendmail.
  const resent = fields.some((f) => /^resent-/i.test(f.name)) ? 'Resent-' : '';
  if (o.extractRecipients) {
    for (const name of ['To', 'Cc', 'Bcc']) {
      for (const v of values(`${resent}${name}`.toLowerCase())) recipients.push(...parseRecipients(v, `header ${resent}${name}`, o.domain));
    }
  }
  if (recipients.length === 0) {
    throw new SubmittedError('usage', o.extractRecipients
      ? `no recipients: none given as arguments and none in the ${resent}To, ${resent}Cc or ${resent}Bcc fields`
      : 'no recipients: give them as arguments, or use -t to take them from the To, Cc and Bcc fields');
  }

  // Header edits.
  let out: Field[] = fields.filter((f) => !DROPPED_FIELD.test(f.name)).map((f) => editedField(f, o.domain));
  const address = sender || qualify(o.defaultSender, o.domain);
  // A name is one line: line breaks and tabs in it (`-F "$(hostname)\n"`) are spaces.
  const name = o.fullName?.replace(/[\r\n\t ]+/g, ' ').trim();
  const from = name ? MimeNode.encodeHeaderValue('From', [{ name, address }] as never) : address;
  for (const line of missingFields(has, { from, hostname: o.hostname, now: o.now ?? new Date() })) {
    out.push({ name: line.slice(0, line.indexOf(':')), lines: headerLine(line) });
  }

  // Body.
  const unfitted = entitySize(out, body);
  let fitted: { fields: Field[]; body: Buffer[] };
  try {
    fitted = fitBody(out, body);
    out = fitHeader(fitted.fields);
  } catch (err) {
    if (err instanceof UnfitLineError) throw new SubmittedError('data', err.message);
    throw err;
  }
  const crlf = Buffer.from('\r\n');
  const parts: Buffer[] = [];
  for (const f of out) for (const l of f.lines) parts.push(l, crlf);
  parts.push(crlf);
  for (const l of fitted.body) parts.push(l, crlf);
  const message = Buffer.concat(parts);
  return { message, sender, recipients: uniqueAddresses(recipients), reencoded: message.length - unfitted };
}

/** The octets of a header and body written out with CRLF line ends. */
function entitySize(fields: Field[], body: Buffer[]): number {
  let size = 2;
  for (const f of fields) for (const l of f.lines) size += l.length + 2;
  for (const l of body) size += l.length + 2;
  return size;
}
