/**
 * The first member name that an object of a JSON text gives twice. RFC 8259 §4: the names within
 * an object SHOULD be unique, and receivers differ on what a repeated one means; JSON.parse keeps
 * the last value and drops the others without a word, so `{"to": "a@x", "to": "b@x"}` would send
 * to b@x alone. The send API refuses such a body instead, as it refuses an unknown field.
 *
 * The text must already have been accepted by JSON.parse. One pass, without recursion (nesting
 * as deep as JSON.parse allows costs no stack), and strings are skipped with a native search for
 * their closing quote: a base64 attachment of megabytes holds no quote or backslash to stop at.
 */

interface Container {
  /** Names given so far; undefined for an array. */
  names: Set<string> | undefined;
  /** Where it lies, as the API's messages name fields ("attachments[0]"); '' for the body. */
  path: string;
  /** An object: the next string is a name. */
  expectName: boolean;
  /** The last name given (an object), or the element's index (an array). */
  member: string;
  index: number;
}

const BACKSLASH = 0x5c;

/** The path of the first repeated name ("to", "attachments[1].filename", 'headers["X-A"]'). */
export function repeatedName(text: string): string | undefined {
  const open: Container[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = open[open.length - 1];
    if (c === '{' || c === '[') {
      open.push({ names: c === '{' ? new Set() : undefined, path: top ? childPath(top) : '', expectName: c === '{', member: '', index: 0 });
    } else if (c === '}' || c === ']') {
      open.pop();
    } else if (c === ',' && top) {
      if (top.names) top.expectName = true;
      else top.index++;
    } else if (c === '"') {
      const end = stringEnd(text, i);
      if (top?.names && top.expectName) {
        const name = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.names.has(name)) return memberPath(top.path, name);
        top.names.add(name);
        top.member = name;
        top.expectName = false;
      }
      i = end;
    }
  }
  return undefined;
}

/** The index of the quote that closes the string whose opening quote is at `start`. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  // A quote after an odd number of backslashes is escaped: part of the string.
  while (end > 0 && escaped(text, end)) end = text.indexOf('"', end + 1);
  return end;
}

function escaped(text: string, quote: number): boolean {
  let n = 0;
  while (text.charCodeAt(quote - 1 - n) === BACKSLASH) n++;
  return n % 2 === 1;
}

function childPath(parent: Container): string {
  return parent.names ? memberPath(parent.path, parent.member) : `${parent.path}[${parent.index}]`;
}

function memberPath(path: string, name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `${path}[${JSON.stringify(name)}]`;
  return path ? `${path}.${name}` : name;
}
