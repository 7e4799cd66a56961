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

/** Renders a reply; `enhanced` says whether ENHANCEDSTATUSCODES is in effect (EHLO, RFC 2034 §3). */
export function renderReply(r: Reply, enhanced: boolean): string {
  const prefix = enhanced && r.enhanced ? `${r.enhanced} ` : '';
  let out = '';
  r.lines.forEach((line, i) => {
    const sep = i === r.lines.length - 1 ? ' ' : '-';
    out += `${r.code}${sep}${prefix}${line}`.trimEnd() + '\r\n';
  });
  return out;
}
