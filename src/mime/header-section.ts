/**
 * Where a message's header section ends, in one place: at the first line that is not a header
 * field (RFC 5322 §2.1, §2.2). That is the empty line in a well-formed message; a message without
 * it has its body begin right there.
 */

/**
 * Where the header section ends: after the last line of its last field; `separated` when the
 * empty line follows there. Past `maxLines` lines it stops, `over`, at the end of the last line
 * it read: a header of millions of lines is not read to its end only to be refused.
 */
export function headerEnd(message: Buffer[], maxLines = Infinity): { end: number; separated: boolean; over?: true } {
  let base = 0;
  let lineStart = 0;
  let lines = 0;
  let inField = false;
  // The current line's first octets (enough for a field name) and its length so far, when it
  // began in an earlier chunk.
  let head = Buffer.alloc(0);
  let length = 0;
  const isField = (h: Buffer) => (inField && (h[0] === 0x20 || h[0] === 0x09)) || startsField(h);
  for (const chunk of message) {
    let at = 0;
    for (let lf = chunk.indexOf(0x0a); lf >= 0; lf = chunk.indexOf(0x0a, at)) {
      const lineHead = length > 0 ? Buffer.concat([head, chunk.subarray(at, at + NAME_ROOM)]).subarray(0, NAME_ROOM) : chunk.subarray(at, Math.min(lf + 1, at + NAME_ROOM));
      const lineLength = length + lf + 1 - at;
      head = Buffer.alloc(0);
      length = 0;
      if (!isField(lineHead)) return { end: lineStart, separated: lineLength === 2 };
      if (++lines > maxLines) return { end: lineStart, separated: false, over: true };
      inField = true;
      at = lf + 1;
      lineStart = base + at;
    }
    if (at < chunk.length) {
      if (head.length < NAME_ROOM) head = Buffer.concat([head, chunk.subarray(at, at + NAME_ROOM)]).subarray(0, NAME_ROOM);
      length += chunk.length - at;
    }
    base += chunk.length;
  }
  // A last line without its CRLF.
  if (length > 0 && isField(head)) return ++lines > maxLines ? { end: lineStart, separated: false, over: true } : { end: base, separated: false };
  return { end: lineStart, separated: false };
}

/**
 * The message with the empty line that ends its header section where it has none (RFC 5322
 * §2.1): a first line that is no header field begins the body, and without the empty line the
 * trace fields put on top would run into it, a header that readers such as fetchmail refuse.
 * Postfix's cleanup puts it in too. The same chunks when it is there, or when the header section
 * is the whole message (§3.5: the body is optional, and so is the line before it).
 */
export function withHeaderEnd(message: Buffer[]): Buffer[] {
  const { end, separated } = headerEnd(message);
  if (separated || end >= message.reduce((n, c) => n + c.length, 0)) return message;
  const whole = Buffer.concat(message);
  return [whole.subarray(0, end), Buffer.from('\r\n'), whole.subarray(end)];
}

/** A header section's fields as text, each with its continuation lines (RFC 5322 §2.2); the
 *  line end closing the last field leaves an empty last entry, so joining with CRLF restores it. */
export function fieldTexts(header: string): string[] {
  return header.split(/\r?\n(?![ \t])/);
}

/**
 * The message without the header fields `drop` picks (each given as its text, continuation lines
 * and all); the same chunks when it picks none. `mention`: what the header section must contain
 * for `drop` to be asked at all, the cheap test most messages end at. The rest of the message
 * stays exactly as it was.
 */
export function withoutFields(message: Buffer[], mention: RegExp, drop: (field: string) => boolean): Buffer[] {
  const { end } = headerEnd(message);
  const header = headerText(message, end);
  if (!mention.test(header)) return message;
  const fields = fieldTexts(header);
  const kept = fields.filter((f) => !drop(f));
  if (kept.length === fields.length) return message;
  return [Buffer.from(kept.join('\r\n'), 'latin1'), Buffer.concat(message).subarray(end)];
}

/**
 * The lines of the header section, those of its longest field with its continuation lines, and
 * how many fields `match` matches (a pattern of a field's start with the flags g, i and m,
 * `/^received[ \t]*:/gim`: continuation lines begin with white space), all as headerEnd reads
 * them, no further than `maxLines` lines (`over` when there are more).
 */
export function headerShape(message: Buffer[], maxLines: number, match: RegExp): { lines: number; fieldLines: number; matching: number; over: boolean } {
  const { end, over } = headerEnd(message, maxLines);
  const text = headerText(message, end);
  let lines = 0;
  let field = 0;
  let fieldLines = 0;
  for (let at = 0; at < text.length;) {
    const c = text.charCodeAt(at);
    field = c === 0x20 || c === 0x09 ? field + 1 : 1;
    if (field > fieldLines) fieldLines = field;
    lines++;
    const lf = text.indexOf('\n', at);
    at = lf < 0 ? text.length : lf + 1;
  }
  return { lines, fieldLines, matching: text.match(match)?.length ?? 0, over: over === true };
}

/** The first `end` octets (the header section) as Latin-1 text, joining only the chunks they lie in. */
function headerText(message: Buffer[], end: number): string {
  const chunks: Buffer[] = [];
  for (let n = 0, i = 0; n < end && i < message.length; i++) {
    chunks.push(message[i]!);
    n += message[i]!.length;
  }
  return (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('latin1', 0, end);
}

/** What a reader decodes as an RFC 2047 encoded-word (§2): =?charset?B|Q?text?= */
export const ENCODED_WORD = /=\?[^?\s]+\?[bq]\?[^?\s]*\?=/i;

/** Fields that hold address lists (RFC 5322 §3.6.2, §3.6.3, §3.6.6; Errors-To, which old
 *  programs still write): qualified by sendmail, folded after their commas when too long. */
export const ADDRESS_FIELD = /^(?:(?:resent-)?(?:from|sender|reply-to|to|cc|bcc)|errors-to)$/i;

/** A field's value (what follows its colon), unfolded (RFC 5322 §2.2.3). */
export function unfoldedValue(field: string): string {
  return field.slice(field.indexOf(':') + 1).replace(/\r?\n/g, '');
}

/** Whether a line is a header field's first: its name (printable ASCII but ":") and the colon
 *  (RFC 5322 §2.2; §4.5.3 allows white space before the colon). Read from the octets, without a
 *  string: this runs for every line of every header, several times per message. */
export function startsField(line: Buffer): boolean {
  let i = 0;
  while (i < line.length && line[i]! >= 0x21 && line[i]! <= 0x7e && line[i] !== 0x3a) i++;
  if (i === 0) return false;
  while (line[i] === 0x20 || line[i] === 0x09) i++;
  return line[i] === 0x3a;
}

/** Octets of a line enough to tell a field's first line (a name is at most 998 of them). */
const NAME_ROOM = 1000;
