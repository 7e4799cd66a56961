/**
 * Address lists as people and scripts write them: `a@example.com`, `"Name" <a@example.com>`,
 * several separated by commas, groups (RFC 5322 §3.4). Parsed with nodemailer's addressparser,
 * then every address is checked against the RFC 5321 mailbox grammar, because it is also an
 * envelope address.
 */
import addressparser from 'nodemailer/lib/addressparser';
import { parseMailbox } from '../smtp/address.ts';
import { addressKey } from '../store/store.ts';
import { ComposeError } from './errors.ts';

export interface NamedAddress {
  /** Display name, '' when there is none. */
  name: string;
  address: string;
}

/** A bad address, with the field it came from ("to", "--cc", "header To", ...). */
export class AddressError extends ComposeError {}

/**
 * Parses one or more address-list strings. Throws AddressError naming the field and the
 * offending text when something is not a valid address.
 */
export function parseAddressList(values: string | string[], field: string): NamedAddress[] {
  const out: NamedAddress[] = [];
  for (const value of Array.isArray(values) ? values : [values]) {
    if (/[\r\n\0]/.test(value)) throw new AddressError(field, `${JSON.stringify(value)} contains a line break or NUL`);
    if (value.trim() === '') throw new AddressError(field, 'empty address');
    const parsed = addressparser(value, { flatten: true });
    if (parsed.length === 0 && EMPTY_GROUP.test(value.trim())) continue;
    if (parsed.length === 0) throw new AddressError(field, `${JSON.stringify(value)} is not an address`);
    if (hasStrayName(value)) throw new AddressError(field, notAList(value));
    for (const a of parsed) {
      const address = a.address.trim();
      const check = parseMailbox(address, true);
      if (address === '' || typeof check === 'string') {
        const what = address === '' ? value : address;
        throw new AddressError(field, `${JSON.stringify(what)} is not a valid address (local-part@domain)${typeof check === 'string' && address !== '' ? `: ${check}` : ''}`);
      }
      out.push({ name: a.name, address });
    }
  }
  return out;
}

/**
 * True when `value` holds an address list entry that is neither one addr-spec nor a name-addr:
 * `a@example.com b@example.com`, or a name without angle brackets (`Bob bob@example.com`).
 * The parser would read it as one address named after the rest, and a recipient would be lost
 * without a word. A display name comes only from `Name <address>` or a comment (RFC 5322 §3.4).
 * The text is walked as RFC 5322 reads it: quoted strings, comments (nested, and holding
 * quotes), angle addresses (with an obsolete route), groups; between two words of an entry
 * without angle brackets, white space may only stand around "@" and "." (`me @ example.com`,
 * §3.2.3 CFWS in a dot-atom).
 */
export function hasStrayName(value: string): boolean {
  let words: string[] = [];
  let word = '';
  let angle = false;
  const entryEnds = () => {
    if (word !== '') words.push(word);
    // (An entry with no "@" at all is no address: the parser's check says so.)
    const stray = !angle && words.some((w) => w.includes('@')) && words.some((w, i) => i > 0 && !/[@.]$/.test(words[i - 1]!) && !/^[@.]/.test(w));
    words = [];
    word = '';
    angle = false;
    return stray;
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"') {
      // A quoted string belongs to the word it stands in.
      let j = i + 1;
      while (j < value.length && value[j] !== '"') j += value[j] === '\\' ? 2 : 1;
      word += value.slice(i, j + 1);
      i = j;
    } else if (c === '(') {
      let depth = 1;
      let j = i + 1;
      for (; j < value.length && depth > 0; j++) {
        if (value[j] === '\\') j++;
        else if (value[j] === '(') depth++;
        else if (value[j] === ')') depth--;
      }
      i = j - 1;
      if (word !== '') words.push(word);
      word = '';
    } else if (c === '<') {
      const close = value.indexOf('>', i);
      angle = true;
      if (word !== '') words.push(word);
      word = '';
      i = close < 0 ? value.length : close;
    } else if (c === ',' || c === ';') {
      if (entryEnds()) return true;
    } else if (c === ':' && !angle) {
      // A group's name: what stood before is its display name, not an address.
      words = [];
      word = '';
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (word !== '') words.push(word);
      word = '';
    } else {
      word += c;
    }
  }
  return entryEnds();
}

/** The reason given for text that hasStrayName finds. */
export function notAList(value: string): string {
  return `${JSON.stringify(value)} is not an address list: separate addresses with commas, and write a display name as Name <address>`;
}

/** A group without members, `undisclosed-recipients:;`, written where every recipient is Bcc
 *  (RFC 5322 §3.4, the example of §A.1.3). */
const EMPTY_GROUP = /^[^:,;<>@"]+:\s*;$/;

/** The values that are groups without members, to be written as they are. */
export function emptyGroups(values: string[] | undefined): string[] {
  return (values ?? []).filter((v) => EMPTY_GROUP.test(v.trim())).map((v) => v.trim());
}

/** One mailbox (a From address): exactly one address, no group. */
export function parseSingleAddress(value: string, field: string): NamedAddress {
  const list = parseAddressList(value, field);
  if (list.length !== 1) throw new AddressError(field, `${JSON.stringify(value)} must be exactly one address`);
  return list[0]!;
}

/** The addresses without repeats (by addressKey), each at its first place and spelling. */
export function uniqueAddresses(addresses: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const a of addresses) {
    const key = addressKey(a);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(a);
    }
  }
  return out;
}
