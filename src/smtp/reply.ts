/**
 * SMTP replies (RFC 5321 §4.2): a three-digit code, an enhanced status code (RFC 2034/3463)
 * once the client has used EHLO, and text; multi-line replies use "code-" continuation lines.
 */
export interface Reply {
  code: number;
  /** Enhanced status code "class.subject.detail", e.g. "5.1.1"; shown only after EHLO. */
  enhanced?: string;
  lines: string[];
}

export function reply(code: number, enhanced: string | undefined, ...lines: string[]): Reply {
  return { code, ...(enhanced ? { enhanced } : {}), lines: lines.length ? lines : [''] };
}

/** What reply text may not hold: anything but tab, space and printable ASCII (RFC 5321 §4.2
 *  textstring); within an SMTPUTF8 transaction, UTF-8 beyond ASCII too (RFC 6531 §3.7.4.2). */
const NOT_TEXT = /[^\t\x20-\x7e]/g;
const NOT_UTF8_TEXT = /[\x00-\x08\x0a-\x1f\x7f]/g;

/**
 * Renders a reply; `enhanced` says whether ENHANCEDSTATUSCODES is in effect (EHLO, RFC 2034
 * §3), `utf8` whether the transaction is SMTPUTF8. A character the text may not hold (an echo of
 * what the client sent, say) is a `?`.
 */
export function renderReply(r: Reply, enhanced: boolean, utf8 = false): string {
  const prefix = enhanced && r.enhanced ? `${r.enhanced} ` : '';
  const notText = utf8 ? NOT_UTF8_TEXT : NOT_TEXT;
  let out = '';
  r.lines.forEach((line, i) => {
    const sep = i === r.lines.length - 1 ? ' ' : '-';
    out += fit(`${r.code}${sep}${prefix}${line.replace(notText, '?')}`.trimEnd()) + '\r\n';
  });
  return out;
}

/** RFC 5321 §4.5.3.1.5: a reply line holds at most 512 octets with its CRLF. */
const MAX_LINE = 510;

/** The line, or as much of it as fits with "..." after it (an echo of a long EHLO argument or
 *  address), never cutting a character in two. */
function fit(line: string): string {
  // Three octets at most per UTF-16 unit: most lines need no count.
  if (line.length * 3 <= MAX_LINE || Buffer.byteLength(line) <= MAX_LINE) return line;
  let cut = line.slice(0, MAX_LINE - 3);
  while (Buffer.byteLength(cut) > MAX_LINE - 3) cut = cut.slice(0, -1);
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}...`;
}
