/**
 * Which charset a script's text is in, read from its bytes: UTF-8 when it is, Latin-1 when it
 * is not (a legacy locale's text, every byte of which is then a character). One place for
 * `send`, which reads text, and `sendmail`, which labels it.
 */
import { isAscii, isUtf8 } from 'node:buffer';

/**
 * True when `bytes` are UTF-8, or would be but for a character cut short at either end, as
 * `head -c` or `tail -c` leave one: read as Latin-1, every other character beyond ASCII in such
 * text would be garbled, whereas as UTF-8 only the cut one is. Text whose only bytes beyond ASCII
 * are at its ends (a Latin-1 "°" first) is no such case.
 */
export function readsAsUtf8(bytes: Buffer): boolean {
  if (isUtf8(bytes)) return true;
  // Up to three continuation bytes of a character begun before the start.
  let start = 0;
  while (start < 3 && start < bytes.length && (bytes[start]! & 0xc0) === 0x80) start++;
  // A lead byte near the end followed by fewer continuation bytes than it announces.
  let end = bytes.length;
  for (let back = 1; back <= 3 && end - back >= start; back++) {
    const b = bytes[end - back]!;
    if ((b & 0xc0) === 0x80) continue;
    if (b >= 0xc0 && (b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2) > back) end -= back;
    break;
  }
  const middle = bytes.subarray(start, end);
  return (start > 0 || end < bytes.length) && !isAscii(middle) && isUtf8(middle);
}

/** The charset to label text with: us-ascii, utf-8 (see readsAsUtf8) or iso-8859-1. */
export function textCharset(bytes: Buffer): 'us-ascii' | 'utf-8' | 'iso-8859-1' {
  return isAscii(bytes) ? 'us-ascii' : readsAsUtf8(bytes) ? 'utf-8' : 'iso-8859-1';
}
