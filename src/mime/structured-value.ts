/**
 * A structured field's value (RFC 5322 §3.2) as its readers walk it: quoted strings (§3.2.4),
 * comments with any nested in them (§3.2.2), and the text between them, so that a comma in a
 * quoted name or a "(" in a quoted string is never taken for what it is outside: for taking
 * comments out (here), sendmail's qualifying of bare names (submitted.ts) and folding an address
 * list after its commas (line-length.ts).
 */

/** What a stretch of the value is. */
export type PieceKind = 'quoted' | 'comment' | 'text';

/** Called for each stretch of the value, [start, end), in order. A quoted string or comment
 *  never closed runs to the end of the value and is not `closed`. */
export type PieceVisitor = (kind: PieceKind, start: number, end: number, closed: boolean) => void;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x28;
const CLOSE = 0x29;

/** Walks the value's pieces in one pass, with nothing made per piece (a stranger's field may
 *  hold millions): a quoted-pair (a backslash and the character after it, §3.2.1) inside a
 *  quoted string or comment never ends it. */
export function eachPiece(value: string, visit: PieceVisitor): void {
  let i = 0;
  while (i < value.length) {
    const c = value.charCodeAt(i);
    let j = i + 1;
    if (c === QUOTE) {
      while (j < value.length && value.charCodeAt(j) !== QUOTE) j += value.charCodeAt(j) === BACKSLASH ? 2 : 1;
    } else if (c === OPEN) {
      for (let depth = 1; j < value.length; j++) {
        const d = value.charCodeAt(j);
        if (d === BACKSLASH) j++;
        else if (d === OPEN) depth++;
        else if (d === CLOSE && --depth === 0) break;
      }
    } else {
      while (j < value.length && value.charCodeAt(j) !== QUOTE && value.charCodeAt(j) !== OPEN) j++;
      visit('text', i, j, true);
      i = j;
      continue;
    }
    const end = Math.min(j + 1, value.length);
    visit(c === QUOTE ? 'quoted' : 'comment', i, end, j < value.length);
    i = end;
  }
}

/** A structured field's value with each comment, nested ones whole, made one space (§3.2.2);
 *  quoted strings are left as they are (no comment is in one), and so is a comment that is
 *  never closed. */
export function withoutComments(value: string): string {
  const out: string[] = [];
  let kept = 0;
  eachPiece(value, (kind, start, end, closed) => {
    if (kind !== 'comment' || !closed) return;
    out.push(value.slice(kept, start), ' ');
    kept = end;
  });
  out.push(value.slice(kept));
  return out.join('');
}
