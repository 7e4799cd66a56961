/** Checks on SMTP reply text (RFC 5321 §4.2) for the tests: lines of "ddd-..." ending with one "ddd ...". */
export function isWellFormedReply(text: string): boolean {
  if (!text.endsWith('\r\n')) return false;
  const lines = text.slice(0, -2).split('\r\n');
  const code = lines[0]!.slice(0, 3);
  if (!/^[2-5][0-9][0-9]$/.test(code)) return false;
  return lines.every((l, i) => l.startsWith(code) && (l.length === 3 || l[3] === (i === lines.length - 1 ? ' ' : '-')));
}
