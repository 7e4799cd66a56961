import { asciiUpper } from '../ascii.ts';

/**
 * Command-line parsing (RFC 5321 §4.1): the verb, and for MAIL/RCPT the path and the ESMTP
 * parameters (RFC 5321 §4.1.2 Mail-parameters / Rcpt-parameters).
 */
export interface CommandLine {
  /** Upper-cased verb. */
  verb: string;
  /** Everything after the verb and one space (may be empty). */
  args: string;
}

export function parseCommandLine(line: string): CommandLine {
  const sp = line.indexOf(' ');
  if (sp < 0) return { verb: asciiUpper(line), args: '' };
  return { verb: asciiUpper(line.slice(0, sp)), args: line.slice(sp + 1) };
}

export type ParamResult = { ok: true; params: Map<string, string | true> } | { ok: false; message: string };

/** esmtp-param = esmtp-keyword ["=" esmtp-value]; keywords are case-insensitive and may not repeat. */
export function parseParams(text: string): ParamResult {
  const params = new Map<string, string | true>();
  if (text.trim() === '') return { ok: true, params };
  for (const part of text.trim().split(/ +/)) {
    const eq = part.indexOf('=');
    const key = asciiUpper(eq < 0 ? part : part.slice(0, eq));
    if (!/^[A-Z0-9][A-Z0-9-]*$/.test(key)) return { ok: false, message: `bad parameter "${part}"` };
    if (params.has(key)) return { ok: false, message: `parameter ${key} given twice` };
    if (eq >= 0) {
      const value = part.slice(eq + 1);
      // esmtp-value = 1*(%d33-60 / %d62-126), or UTF-8 under SMTPUTF8 (RFC 6531 §3.3)
      if (value === '' || /[\x00-\x20=\x7f]/.test(value)) return { ok: false, message: `bad value for ${key}` };
      params.set(key, value);
    } else {
      params.set(key, true);
    }
  }
  return { ok: true, params };
}
