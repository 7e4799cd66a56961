/**
 * A message's lines made to fit RFC 5322 §2.1.1's 998 octets, in one place for `sendmail` and
 * SMTP submission: mail written here goes on unchanged through relays that fold longer lines
 * (Postfix folds at 998 by default), which would break its DKIM signature on the way.
 *
 * A header line is folded before white space (RFC 5322 §2.2.3). A body that is not MIME, or is
 * one text part in 7bit or 8bit (as Debian's cron writes it), is re-encoded as quoted-printable
 * (RFC 2045 §6.7), whose lines are short, and so is such a body holding NUL, which no 7bit or
 * 8bit data may (RFC 2045 §2.7, §2.8); base64 written as one long line (`base64 -w0`) is
 * wrapped at 76 characters (§6.8); a multipart message has each of its parts so fitted (see
 * fitEntity); what is left (an encapsulated message, quoted-printable with long lines) is
 * refused, as it cannot be fixed without changing what it says.
 * What `sendmail` is handed, on its standard input or over SMTP with -bs, gets the rest of
 * fitBody's care too (8-bit text outside MIME, missing MIME labels); over SMTP from the network
 * only a long line calls for it. Mail from the internet is not
 * touched: it is not ours to change.
 */
import { isAscii } from 'node:buffer';
import * as qp from 'nodemailer/lib/qp';
import { trimEndBlanks } from '../ascii.ts';
import { ADDRESS_FIELD, startsField, unfoldedValue } from './header-section.ts';
import { eachPiece } from './structured-value.ts';
import { textCharset } from './text-charset.ts';

/** RFC 5322 §2.1.1: a line is at most 998 octets without its CRLF. */
export const MAX_LINE = 998;

/** What re-encoding a message does, in the words of the refusals of one it takes too large. */
export const RE_ENCODING = 'quoted-printable, for lines over 998 octets or 8-bit text outside MIME';

/** A word (a run without white space) longer than this cannot be folded under MAX_LINE. */
export const MAX_WORD = 900;

export interface Field {
  /** Field name as written. */
  name: string;
  /** The physical lines (without CRLF), the first holding "Name:". */
  lines: Buffer[];
}

/** A line that cannot be sent as it is (too long, or holding NUL), in a message that cannot be
 *  re-encoded here. */
export class UnfitLineError extends Error {}

/** Octets that plain 7-bit text may not hold: 8-bit ones and NUL. */
export const needsEncoding = (b: Buffer) => !isAscii(b) || b.includes(0);

/** The header fields of the first lines, up to the empty line or the first line that is no
 *  field, and the body lines after them. */
export function splitFields(lines: Buffer[]): { fields: Field[]; body: Buffer[] } {
  const { fields, bodyStart } = fieldsAt(lines, 0, lines.length);
  return { fields, body: lines.slice(bodyStart) };
}

/** splitFields of lines[start, end): the fields, and the index of the body's first line. */
function fieldsAt(lines: Buffer[], start: number, end: number): { fields: Field[]; bodyStart: number } {
  const fields: Field[] = [];
  let i = start;
  for (; i < end; i++) {
    const line = lines[i]!;
    if (line.length === 0) {
      i++;
      break;
    }
    const text = line.toString('latin1');
    if (startsField(line)) fields.push({ name: text.slice(0, text.indexOf(':')).trim(), lines: [line] });
    else if ((text[0] === ' ' || text[0] === '\t') && fields.length > 0) fields[fields.length - 1]!.lines.push(line);
    else break; // the body starts here, without the blank line
  }
  return { fields, bodyStart: i };
}

/**
 * The fields and body lines to send: a body with a line over MAX_LINE, or 8-bit text outside
 * MIME, as quoted-printable with the fields that say so; a MIME message without MIME-Version
 * given one, and its 8-bit text without a transfer encoding labelled 8bit. Throws
 * UnfitLineError for a long line it cannot re-encode.
 */
export function fitBody(fields: Field[], body: Buffer[]): { fields: Field[]; body: Buffer[] } {
  const has = (name: string) => fields.some((f) => f.name.toLowerCase() === name);
  const isMime = has('mime-version') || has('content-type') || has('content-transfer-encoding');
  const longLine = body.findIndex((l) => l.length > MAX_LINE);
  const nul = body.findIndex((l) => l.includes(0));
  if (!isMime && (longLine >= 0 || body.some(needsEncoding))) {
    const text = joinLines(body);
    return {
      fields: [...fields, field('MIME-Version', '1.0'), plainText(text), field('Content-Transfer-Encoding', 'quoted-printable')],
      body: [quotedPrintable(text)],
    };
  }
  if (longLine >= 0 || nul >= 0) {
    const lines: Lines = { all: body, unfit: [] };
    body.forEach((l, i) => { if (unfit(l)) lines.unfit.push(i); });
    const out: Buffer[] = [];
    let top = fields;
    const fitted = fitEntity(fields, lines, 0, body.length, 'text/plain', 0, out, (f) => { top = f; });
    if (fitted) {
      const { line, advice } = fitted.blocked;
      const what = body[line]!.includes(0) ? 'holds a NUL octet, which no 7bit or 8bit data may (RFC 2045 section 2.8)' : `is ${body[line]!.length} octets; lines are limited to ${MAX_LINE} (RFC 5322 section 2.1.1)`;
      throw new UnfitLineError(`body line ${line + 1} ${what}: ${advice}`);
    }
    fields = top;
    body = out;
  }
  if (!isMime) return { fields, body };
  // What PHP's mail() and many scripts write: a Content-Type without MIME-Version (RFC 2045 §4
  // wants one), and 8-bit text without a transfer encoding, which then reads as 7bit (§6.1).
  // Without a Content-Type 8-bit text would read as US-ASCII (RFC 2045 §5.2): its charset is said.
  const added: Field[] = [];
  const eightBit = body.some((l) => !isAscii(l));
  if (!has('mime-version')) added.push(field('MIME-Version', '1.0'));
  if (!has('content-type') && eightBit) added.push(plainText(joinLines(body)));
  if (!has('content-transfer-encoding') && eightBit) added.push(field('Content-Transfer-Encoding', '8bit'));
  return { fields: [...fields, ...added], body };
}

/** Parts within parts followed at most this deep (Postfix's mime_nesting_limit). */
const MAX_NESTING = 100;

/** Where an entity cannot be fitted: the index of its first line that cannot be, among the
 *  body's lines, and what the sender can do about it. */
interface Blocked {
  blocked: { line: number; advice: string };
}

/** The body's lines, and the indices of those that cannot go as they are (in order). Fitting
 *  works on ranges of them and writes to one array, so that a part within parts is neither
 *  copied nor searched again at every level. */
interface Lines {
  all: Buffer[];
  unfit: number[];
}

const unfit = (l: Buffer) => l.length > MAX_LINE || l.includes(0);

/** The first line in [start, end) that cannot go as it is, or -1. */
function firstUnfit(lines: Lines, start: number, end: number): number {
  let lo = 0;
  let hi = lines.unfit.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (lines.unfit[mid]! < start) lo = mid + 1;
    else hi = mid;
  }
  const at = lines.unfit[lo];
  return at !== undefined && at < end ? at : -1;
}

/**
 * One MIME entity (the message, or a part of it), its body lines[start, end), made to fit and
 * written to `out` after its fields, which go to `header`: text or data in 7bit, 8bit or binary
 * with a line over MAX_LINE or a NUL as quoted-printable (RFC 2045 §6.7), whose lines are
 * short; base64 written in long lines wrapped at 76 characters (its line breaks carry nothing,
 * §6.8); a multipart's parts each so, between the same boundaries (RFC 2046 §5.1), as PHP's
 * mail() users write attachments in one line of base64. `defaultType` is the type of an entity
 * without Content-Type (RFC 2046 §5.1.5: message/rfc822 in a multipart/digest). Returns what
 * cannot be fixed here: an encapsulated message, quoted-printable or another encoding with long
 * lines, a multipart whose boundary is not given, or one nested too deep.
 */
function fitEntity(fields: Field[], lines: Lines, start: number, end: number, defaultType: string, depth: number, out: Buffer[], header: (fields: Field[]) => void): Blocked | undefined {
  const first = firstUnfit(lines, start, end);
  if (first < 0) {
    header(fields);
    for (let i = start; i < end; i++) out.push(lines.all[i]!);
    return undefined;
  }
  const blocked = (advice: string): Blocked => ({ blocked: { line: first, advice } });
  const contentType = valueOf(fields, 'content-type');
  const type = (/^\s*([^\s;/]+\/[^\s;]+)/.exec(contentType)?.[1] ?? defaultType).toLowerCase();
  const encoding = valueOf(fields, 'content-transfer-encoding').toLowerCase();
  // RFC 1847 §2.1: the signature covers the signed part as it was sent, and encrypted data is
  // the sender's to encode; re-encoding either breaks it.
  if (type === 'multipart/signed' || type === 'multipart/encrypted') return blocked('a signed or encrypted message goes as it was signed (RFC 1847 section 2.1): sign it again with its text encoded (quoted-printable or base64)');
  if (type.startsWith('multipart/')) {
    if (depth >= MAX_NESTING) return blocked(`its parts are nested more than ${MAX_NESTING} deep`);
    // RFC 2045 §6.4: a multipart is 7bit, 8bit or binary, its parts encoded each on its own.
    if (!/^(7bit|8bit|binary|)$/.test(encoding)) return blocked(`a multipart is sent as it is (Content-Transfer-Encoding 7bit, 8bit or binary, RFC 2045 section 6.4), not in ${encoding}; encode its parts instead`);
    const boundary = parameter(contentType, 'boundary');
    if (!boundary) return blocked('its Content-Type names no boundary');
    header(fields);
    return fitParts(lines, start, end, boundary, type === 'multipart/digest' ? 'message/rfc822' : 'text/plain', depth + 1, out);
  }
  if (type.startsWith('message/')) return blocked('encode the message it holds, or attach it as a file (base64)');
  const body = lines.all.slice(start, end);
  if (encoding === 'base64') {
    const text = joinLines(body).toString('latin1').replace(/[\r\n\t ]/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return blocked('its base64 is not valid');
    header(fields);
    for (let at = 0; at < text.length; at += 76) out.push(Buffer.from(text.slice(at, at + 76), 'latin1'));
    return undefined;
  }
  if (encoding === 'quoted-printable') {
    return blocked(lines.all[first]!.includes(0) ? 'encode it as quoted-printable does (=00)' : 'quoted-printable lines are at most 76 characters (RFC 2045 section 6.7)');
  }
  if (!/^(7bit|8bit|binary|)$/.test(encoding)) return blocked(`its Content-Transfer-Encoding ${encoding} is not one this server can re-encode; use quoted-printable or base64`);
  // Without a Content-Type it would read as us-ascii (RFC 2045 §5.2): its charset is said.
  const text = joinLines(body);
  const kept = fields.filter((f) => !/^content-transfer-encoding$/i.test(f.name));
  header([...kept, ...(contentType === '' && defaultType === 'text/plain' ? [plainText(text)] : []), field('Content-Transfer-Encoding', 'quoted-printable')]);
  out.push(quotedPrintable(text));
  return undefined;
}

/** The body lines[start, end) of a multipart with `boundary` written to `out`, each part made
 *  to fit (fitEntity) with its header folded (fitHeader); what cannot be when a part cannot
 *  be, holds NUL in its header, or a line outside the parts (the preamble, the epilogue) is too
 *  long or holds NUL. */
function fitParts(lines: Lines, start: number, end: number, boundary: string, defaultType: string, depth: number, out: Buffer[]): Blocked | undefined {
  // RFC 2046 §5.1.1: a delimiter line is "--" boundary, the last one with "--" after it, and
  // white space may follow either.
  const delimiter = (l: Buffer): 'next' | 'last' | undefined => {
    if (l.length < boundary.length + 2 || l[0] !== 0x2d || l[1] !== 0x2d) return undefined;
    const text = trimEndBlanks(l.toString('latin1'));
    return text === `--${boundary}` ? 'next' : text === `--${boundary}--` ? 'last' : undefined;
  };
  /** The index of the first line of the part under way. */
  let part: number | undefined;
  let ended = false;
  const close = (to: number): Blocked | undefined => {
    if (part === undefined) return undefined;
    // A part with nothing to fit goes as it came, line for line.
    if (firstUnfit(lines, part, to) < 0) {
      for (let i = part; i < to; i++) out.push(lines.all[i]!);
      return undefined;
    }
    const { fields, bodyStart } = fieldsAt(lines.all, part, to);
    for (let i = part; i < bodyStart; i++) if (lines.all[i]!.includes(0)) return { blocked: { line: i, advice: 'a NUL has no place in a header' } };
    return fitEntity(fields, lines, bodyStart, to, defaultType, depth, out, (f) => {
      for (const x of fitHeader(f)) for (const l of x.lines) out.push(l);
      out.push(Buffer.alloc(0));
    });
  };
  for (let i = start; i < end; i++) {
    const line = lines.all[i]!;
    const d: 'next' | 'last' | undefined = ended ? undefined : delimiter(line);
    if (d) {
      const failed = close(i);
      if (failed) return failed;
      out.push(line);
      part = d === 'next' ? i + 1 : undefined;
      ended = d === 'last';
    } else if (part === undefined) {
      if (unfit(line)) return { blocked: { line: i, advice: 'shorten the text before the first part or after the last, which no reader shows' } };
      out.push(line);
    }
  }
  // A multipart cut short of its last delimiter: its last part is fitted all the same.
  return close(end);
}

/** A parameter's value in a structured field (RFC 2045 §5.1), quoted or not; quoted values of
 *  other parameters are passed over whole, so that none is read inside one. */
function parameter(value: string, name: string): string | undefined {
  const re = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]*)/g;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    if (m[1]!.toLowerCase() === name) return m[2]!.startsWith('"') ? m[2]!.slice(1, -1).replace(/\\(.)/g, '$1') : m[2]!;
  }
  return undefined;
}

function valueOf(fields: Field[], name: string): string {
  const f = fields.find((x) => x.name.toLowerCase() === name);
  return f ? unfoldedValue(f.lines.map((l) => l.toString('latin1')).join('\r\n')).trim() : '';
}

function field(name: string, text: string): Field {
  return { name, lines: [Buffer.from(`${name}: ${text}`)] };
}

function joinLines(lines: Buffer[]): Buffer {
  let size = Math.max(0, 2 * (lines.length - 1));
  for (const l of lines) size += l.length;
  const joined = Buffer.allocUnsafe(size);
  let at = 0;
  for (const l of lines) {
    if (at > 0) at = joined.writeUInt16BE(0x0d0a, at);
    at += l.copy(joined, at);
  }
  return joined;
}

/** Text as quoted-printable, its lines joined by CRLF in one buffer (one entry of a list of
 *  lines, as the CRLF after it is the list's). A line that begins with "-" has it encoded (=2D,
 *  which RFC 2045 §6.7 allows of any character), so that no soft line break makes a line that
 *  reads as a multipart's delimiter (RFC 2046 §5.1.1): lines are wrapped at 74 so that they stay
 *  within 76. */
function quotedPrintable(text: Buffer): Buffer {
  return Buffer.from(qp.wrap(qp.encode(text), 74).replace(/^-/gm, '=2D'), 'latin1');
}

/** Text's Content-Type, its charset read from its bytes (see textCharset). */
function plainText(text: Buffer): Field {
  return field('Content-Type', `text/plain; charset=${textCharset(text)}`);
}

const isWsp = (c: number | undefined) => c === 0x20 || c === 0x09;

/** The fields with every line over MAX_LINE folded. Throws UnfitLineError for a run without white
 *  space too long for a line. */
export function fitHeader(fields: Field[]): Field[] {
  return fields.map((f) => {
    if (!f.lines.some((l) => l.length > MAX_LINE)) return f;
    const list = ADDRESS_FIELD.test(f.name);
    return { name: f.name, lines: f.lines.flatMap((l) => foldLong(list ? spacedList(l) : l, f.name)) };
  });
}

/**
 * An address list's line with a space after each comma between its elements, where white space
 * may always stand (RFC 5322 §3.4: CFWS around each address), so that a list written without
 * any (`a@x,b@x,...`, as scripts join one) can be folded there. Commas in quoted strings,
 * comments and angle brackets are left as they are.
 */
function spacedList(line: Buffer): Buffer {
  const text = line.toString('latin1');
  const out: string[] = [];
  let kept = 0;
  let angle = 0;
  eachPiece(text, (kind, start, end) => {
    for (let i = start; kind === 'text' && i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x3c) angle++;
      else if (c === 0x3e && angle > 0) angle--;
      else if (c === 0x2c && angle === 0 && !isWsp(text.charCodeAt(i + 1))) {
        out.push(text.slice(kept, i + 1), ' ');
        kept = i + 1;
      }
    }
  });
  out.push(text.slice(kept));
  return Buffer.from(out.join(''), 'latin1');
}

/**
 * A header line over MAX_LINE octets, broken before white space into lines that fit. Unfolding
 * removes only the CRLF (RFC 5322 §2.2.3), so the field's value is unchanged; a run without
 * white space that does not fit cannot be broken, and the message is refused.
 */
function foldLong(line: Buffer, name: string): Buffer[] {
  const out: Buffer[] = [];
  // White space at the end would be left a line of its own, which folding must not make.
  let end = line.length;
  while (end > 0 && isWsp(line[end - 1])) end--;
  let rest = line.subarray(0, end);
  while (rest.length > MAX_LINE) {
    let start = 0;
    while (isWsp(rest[start])) start++;
    let at = MAX_LINE;
    while (at > start && !isWsp(rest[at])) at--;
    if (at <= start) {
      let runEnd = start;
      while (runEnd < rest.length && !isWsp(rest[runEnd])) runEnd++;
      throw new UnfitLineError(`header ${name} has ${runEnd - start} octets without white space, more than fit in a line of at most ${MAX_LINE} (RFC 5322 section 2.1.1): shorten it, or encode it (RFC 2047)`);
    }
    out.push(rest.subarray(0, at));
    rest = rest.subarray(at);
  }
  out.push(rest);
  return out;
}

/**
 * A message handed in over SMTP submission (CRLF lines) whose lines fit: the same chunks when
 * none is over MAX_LINE, else with its header folded and its body re-encoded as above. Throws
 * UnfitLineError.
 */
export function fitSubmittedLines(message: Buffer[]): Buffer[] {
  if (!hasLongLine(message)) return message;
  // A long header line alone leaves the body as it came.
  return refit(message, (body) => body.some((l) => l.length > MAX_LINE));
}

/**
 * A message a local program handed over SMTP (`sendmail -bs`), given the care of what the
 * sendmail command reads on its standard input: 8-bit text outside MIME, missing MIME labels,
 * as well as long lines (fitBody). Throws UnfitLineError.
 */
export function fitLocalMessage(message: Buffer[]): Buffer[] {
  return refit(message, () => true);
}

/** The message with its header folded to fit, and its body given fitBody's care when
 *  `needsCare` says it needs it. */
function refit(message: Buffer[], needsCare: (body: Buffer[]) => boolean): Buffer[] {
  const whole = Buffer.concat(message);
  const lines: Buffer[] = [];
  for (let at = 0; at < whole.length;) {
    const lf = whole.indexOf(0x0a, at);
    const stop = lf < 0 ? whole.length : lf;
    lines.push(whole.subarray(at, stop > at && whole[stop - 1] === 0x0d ? stop - 1 : stop));
    at = stop + 1;
  }
  const { fields, body } = splitFields(lines);
  const fitted = needsCare(body) ? fitBody(fields, body) : { fields, body };
  const crlf = Buffer.from('\r\n');
  const out: Buffer[] = [];
  for (const f of fitHeader(fitted.fields)) for (const l of f.lines) out.push(l, crlf);
  out.push(crlf);
  for (const l of fitted.body) out.push(l, crlf);
  return [Buffer.concat(out)];
}

/** True when a line is longer than MAX_LINE octets without its CRLF. */
export function hasLongLine(message: Buffer[]): boolean {
  // The length of the line under way, its CR counted: a line may cross chunks.
  let length = 0;
  let last = 0;
  for (const chunk of message) {
    let at = 0;
    for (let lf = chunk.indexOf(0x0a, at); lf >= 0; lf = chunk.indexOf(0x0a, at)) {
      if (length + lf - at > MAX_LINE + 1) return true;
      length = 0;
      at = lf + 1;
    }
    length += chunk.length - at;
    if (length > MAX_LINE + 1) return true;
    if (chunk.length > 0) last = chunk[chunk.length - 1]!;
  }
  // A last line without its line end has no CR either.
  return length > MAX_LINE + (last === 0x0d ? 1 : 0);
}
