import url from 'node:url';

/** Whether text is ASCII only: the test behind every choice between a form for ASCII and one
 *  for more (SMTPUTF8, A-labels, RFC 6533's global types). */
export function isAscii(text: string): boolean {
  return /^[\x00-\x7f]*$/.test(text);
}

/** C0 and C1 control characters and DEL: what text from elsewhere (a client's ORCPT, a
 *  server's reply, a file name) may not carry into a header field or onto a terminal. */
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/** The marks that turn text around or break its line (U+061C, U+200E and U+200F, U+2028 to
 *  U+202E, U+2066 to U+2069): harmless in a header field, but a terminal or a journal shows the
 *  text around them other than it is (U+202E shows it backwards). As a character class's body. */
export const TURNING_MARKS = '\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069';
const UNPRINTABLE = new RegExp(`[\\x00-\\x1f\\x7f-\\x9f${TURNING_MARKS}]`, 'g');

export function hasControlCharacters(text: string): boolean {
  return CONTROL.test(text);
}

/** `text` with each control character and each turning mark replaced by what `by` makes of it:
 *  text from elsewhere (a server's reply) as a terminal or a report shows it. */
export function replaceUnprintable(text: string, by: (c: string) => string): string {
  return text.replace(UNPRINTABLE, by);
}

/**
 * Upper case in the ASCII sense only, as protocol keywords are compared (RFC 5321 §2.4): the
 * Unicode mapping would make "MAıL" (a dotless i) or "ﬆARTTLS" (a ligature) a command, which
 * a filter in front of the server would not take for one.
 */
export function asciiUpper(text: string): string {
  return text.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

/**
 * A domain in A-labels (RFC 5890 §2.3.2.1), the form DNS and every SMTP server take, or
 * undefined when it has none: the conversion fails, or leaves an empty label (U+200B and other
 * characters it maps to nothing).
 */
export function aLabels(domain: string): string | undefined {
  if (isAscii(domain)) return domain;
  const a = url.domainToASCII(domain);
  return a === '' || a.split('.').includes('') ? undefined : a;
}

/**
 * The address in ASCII, when it has an ASCII form: as it is, or with an internationalised domain
 * in its A-labels after an ASCII local part, which every SMTP server and header reader takes
 * (RFC 6531 §3.2 wants SMTPUTF8 only for what has no such form). Undefined when the local part
 * is not ASCII or the domain has no A-label form.
 */
export function asciiAddress(address: string): string | undefined {
  if (isAscii(address)) return address;
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  if (at < 0 || !isAscii(local)) return undefined;
  const domain = aLabels(address.slice(at + 1));
  return domain === undefined ? undefined : `${local}@${domain}`;
}

/**
 * `text` without the spaces and tabs at its end. A loop, not `/[ \t]+$/`: a regular expression
 * tries that from every position of a run of them, so a long run before some other character
 * (what a stranger may send) costs the square of its length.
 */
export function trimEndBlanks(text: string): string {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return text.slice(0, end);
}
