/** Whether text is ASCII only: the test behind every choice between a form for ASCII and one
 *  for more (SMTPUTF8, A-labels, RFC 6533's global types). */
export function isAscii(text: string): boolean {
  return /^[\x00-\x7f]*$/.test(text);
}

/**
 * Upper case in the ASCII sense only, as protocol keywords are compared (RFC 5321 §2.4): the
 * Unicode mapping would make "MAıL" (a dotless i) or "ﬆARTTLS" (a ligature) a command, which
 * a filter in front of the server would not take for one.
 */
export function asciiUpper(text: string): string {
  return text.replace(/[a-z]+/g, (m) => m.toUpperCase());
}
