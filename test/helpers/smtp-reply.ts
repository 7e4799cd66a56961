/**
 * Checks on SMTP reply text (RFC 5321 §4.2) for the tests: lines of "ddd-..." ending with one
 * "ddd ...", holding no control character but tab (UTF-8 may come within an SMTPUTF8
 * transaction, RFC 6531 §3.7.4.2; isAsciiReply checks for its absence).
 */
export function isWellFormedReply(text: string): boolean {
  if (!text.endsWith('\r\n')) return false;
  const lines = text.slice(0, -2).split('\r\n');
  const code = lines[0]!.slice(0, 3);
  if (!/^[2-5][0-9][0-9]$/.test(code)) return false;
  return lines.every((l, i) => l.startsWith(code) && (l.length === 3 || l[3] === (i === lines.length - 1 ? ' ' : '-')) && !/[\x00-\x08\x0a-\x1f\x7f]/.test(l));
}

/** True when every character of `text` is tab, CR, LF, space or printable ASCII. */
export function isAsciiReply(text: string): boolean {
  return /^[\t\r\n\x20-\x7e]*$/.test(text);
}
