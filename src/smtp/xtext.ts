import { isUtf8 } from 'node:buffer';

/**
 * xtext (RFC 3461 §4): printable ASCII except "+" and "=", with "+XX" hex escapes. The octets
 * it encodes are read as UTF-8 when they are that (an address of RFC 6531's), else as Latin-1.
 */
export function decodeXtext(text: string): string | undefined {
  const octets: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (text[i] === '+') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      octets.push(parseInt(hex, 16));
      i += 2;
    } else if (c < 33 || c > 126 || text[i] === '=') {
      return undefined;
    } else {
      octets.push(c);
    }
  }
  const bytes = Buffer.from(octets);
  return bytes.toString(isUtf8(bytes) ? 'utf8' : 'latin1');
}

/**
 * The address of RFC 6533 §3's `utf-8` address type: utf-8-addr-xtext, or under SMTPUTF8
 * utf-8-addr-unitext (its UTF-8 as it is), both with `\x{HEX}` for any character, and none of
 * "+", "=", "\" or controls bare.
 */
export function decodeUtf8Address(text: string, utf8: boolean): string | undefined {
  let out = '';
  for (let i = 0; i < text.length;) {
    const c = text.codePointAt(i)!;
    if (text[i] === '\\') {
      const m = /^\\x\{([0-9A-Fa-f]{2,6})\}/.exec(text.slice(i));
      const point = m ? parseInt(m[1]!, 16) : NaN;
      if (!m || point > 0x10ffff || (point >= 0xd800 && point <= 0xdfff)) return undefined;
      out += String.fromCodePoint(point);
      i += m[0].length;
      continue;
    }
    if (c < 33 || c === 127 || text[i] === '+' || text[i] === '=' || (c > 127 && !utf8)) return undefined;
    out += String.fromCodePoint(c);
    i += c > 0xffff ? 2 : 1;
  }
  return out === '' ? undefined : out;
}

/** The inverse of decodeUtf8Address: utf-8-addr-xtext (RFC 6533 §3), plain ASCII, valid with
 *  or without SMTPUTF8. Every character that may not stand bare is written `\x{HEX}`, in two
 *  hex digits at least; an address with a control character, which none has, is undefined. */
export function encodeUtf8Address(address: string): string | undefined {
  let out = '';
  for (const ch of address) {
    const c = ch.codePointAt(0)!;
    if (c < 32 || c === 127) return undefined;
    out += c > 126 || c === 32 || ch === '+' || ch === '=' || ch === '\\' ? `\\x{${c.toString(16).toUpperCase().padStart(2, '0')}}` : ch;
  }
  return out;
}
