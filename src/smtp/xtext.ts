/** xtext (RFC 3461 §4): printable ASCII except "+" and "=", with "+XX" hex escapes. */
export function decodeXtext(text: string): string | undefined {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (text[i] === '+') {
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (c < 33 || c > 126 || text[i] === '=') {
      return undefined;
    } else {
      out += text[i];
    }
  }
  return out;
}
