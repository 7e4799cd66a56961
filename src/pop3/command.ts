import { asciiUpper, trimEndBlanks } from '../ascii.ts';

/**
 * POP3 command lines (RFC 1939 §3): a case-insensitive keyword, then arguments separated by
 * single spaces. Argument checks give the precise -ERR text for each mistake.
 */

export interface CommandLine {
  /** The keyword, upper-cased. */
  verb: string;
  /** Everything after the first space, exactly as sent (PASS takes it whole). */
  rest: string;
  /** `rest` split on runs of spaces, those before and after ignored; empty when there are none. */
  args: string[];
}

export function parseCommand(line: Buffer): CommandLine {
  const text = line.toString('utf8');
  const sp = text.indexOf(' ');
  const verb = asciiUpper(sp < 0 ? text : text.slice(0, sp));
  const rest = sp < 0 ? '' : text.slice(sp + 1);
  // RFC 1939 §3 separates arguments by one space; a run of them is read as one (PASS takes
  // `rest` whole, for a password may hold spaces).
  const trimmed = trimEndBlanks(rest.replace(/^ +/, ''));
  return { verb, rest, args: trimmed === '' ? [] : trimmed.split(/ +/) };
}

export type ArgCheck<T> = { ok: true; value: T } | { ok: false; error: string };

/** Exactly `count` arguments (or between min and max). */
export function arity(c: CommandLine, min: number, max = min): string | undefined {
  if (c.args.length < min) return min === 1 && max === 1 ? `${c.verb} needs an argument` : `${c.verb} needs ${min} arguments`;
  if (c.args.length > max) return max === 0 ? `${c.verb} takes no arguments` : `noise after the arguments of ${c.verb}`;
  return undefined;
}

/** A message number (RFC 1939 §3: "msg" is a decimal number, 1-based). Any number of digits:
 *  one past the maildrop is "no such message", not a syntax error. */
export function messageNumber(arg: string): ArgCheck<number> {
  if (!/^\d+$/.test(arg)) return { ok: false, error: 'invalid message number' };
  return { ok: true, value: Number(arg) };
}

/** A non-negative line count for TOP; any number of digits, for RFC 1939 §7 sends the whole
 *  body when it has fewer lines (so "TOP 1 99999999999999999999" asks for all of it). */
export function lineCount(arg: string): ArgCheck<number> {
  if (!/^\d+$/.test(arg)) return { ok: false, error: 'invalid number of lines' };
  return { ok: true, value: Math.min(Number(arg), Number.MAX_SAFE_INTEGER) };
}
