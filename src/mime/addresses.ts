/**
 * Address lists as people and scripts write them: `a@example.com`, `"Name" <a@example.com>`,
 * several separated by commas, groups (RFC 5322 §3.4). Parsed with nodemailer's addressparser,
 * then every address is checked against the RFC 5321 mailbox grammar, because it is also an
 * envelope address.
 */
import addressparser from 'nodemailer/lib/addressparser';
import { asciiAddress } from '../ascii.ts';
import { parseMailbox } from '../smtp/address.ts';
import { addressKey } from '../store/store.ts';
import { ComposeError } from './errors.ts';
import { encodedWords } from './encoded-words.ts';
import { ENCODED_WORD } from './header-section.ts';
import { MAX_WORD } from './line-length.ts';

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
      const check = parseMailbox(address);
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
 * `a@example.com b@example.com`, a name without angle brackets (`Bob bob@example.com`), an
 * unquoted "@" in a name (`bob@example.com <alice@example.com>`), text after the angle address
 * or a second one (`<alice@example.com>bob@example.com`). Parsers read such text differently:
 * one keeps the first address and names it after the rest, so a recipient is lost without a
 * word; another reads the From field as someone else than the sender check did. A display name
 * comes only from `Name <address>` or a comment (RFC 5322 §3.4). The text is walked as RFC 5322
 * reads it: quoted strings, comments (nested, and holding quotes), angle addresses (with an
 * obsolete route), groups; between two words of an entry without angle brackets, white space
 * may only stand around "@" and "." (`me @ example.com`, §3.2.3 CFWS in a dot-atom).
 */
export function hasStrayName(value: string): boolean {
  let before: string[] = [];
  let after: string[] = [];
  let angles = 0;
  let angleAddress = '';
  let word = '';
  const unquoted = (w: string) => w.replace(/"(?:[^"\\]|\\.)*"/g, '');
  // A name holding an "@" outside quotes, unless it is the address itself (`me@x <me@x>`, as
  // printers and scripts write it, which every reader takes for the same mailbox).
  const namesAnother = (w: string) => unquoted(w).includes('@') && w.toLowerCase() !== angleAddress.toLowerCase();
  const endWord = () => {
    if (word !== '') (angles > 0 ? after : before).push(word);
    word = '';
  };
  const entryStrays = () => {
    endWord();
    const stray = angles > 0
      ? angles > 1 || after.length > 0 || before.some(namesAnother)
      // (An entry with no "@" at all is no address: the parser's check says so.)
      : before.some((w) => w.includes('@')) && before.some((w, i) => i > 0 && !/[@.]$/.test(before[i - 1]!) && !/^[@.]/.test(w));
    before = [];
    after = [];
    angles = 0;
    angleAddress = '';
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
      endWord();
    } else if (c === '<') {
      endWord();
      angles++;
      // To the ">" that closes it, past any quoted local part (`<"a>b"@example.com>`).
      let j = i + 1;
      while (j < value.length && value[j] !== '>') {
        if (value[j] === '"') {
          for (j++; j < value.length && value[j] !== '"'; j++) if (value[j] === '\\') j++;
        }
        j++;
      }
      angleAddress = value.slice(i + 1, j).trim();
      i = j;
    } else if (c === ',' || c === ';') {
      if (entryStrays()) return true;
    } else if (c === ':' && angles === 0) {
      // A group's name: what stood before is its display name, not an address; one with an "@"
      // outside quotes is an address to some readers (`alice@example.com: eve@example.net;`).
      endWord();
      if (before.some((w) => unquoted(w).includes('@'))) return true;
      before = [];
    } else if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      endWord();
    } else {
      word += c;
    }
  }
  return entryStrays();
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

/** RFC 5322 §3.2.3 atext: a display name of such words, one space between, is written as it is. */
const ATOM_PHRASE = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*$/;
/** An addr-spec that needs no angle brackets to be read as one (no quoted local part, no literal). */
const PLAIN_ADDRESS = /^[^\s"(),:;<>@[\\\]]+@[^\s"(),:;<>@[\\\]]+$/;

/**
 * An address field's value (RFC 5322 §3.4), one line to be folded: each mailbox as
 * `name <address>` or the bare address, then the `groups` (empty ones, as given). A display
 * name goes out as atoms when it is plain words, as a quoted-string when it holds other
 * printable ASCII, and as RFC 2047 encoded-words when it holds anything else, or text a reader
 * would take for an encoded-word and decode (RFC 2047 §5 lets readers decode even inside
 * quotes): so every name reads back as it was written. The domain goes in A-labels unless the
 * local part needs SMTPUTF8 anyway.
 */
export function formatAddressList(list: NamedAddress[], groups: string[] = []): string {
  return [...list.map(formatMailbox), ...groups].join(', ');
}

function formatMailbox(a: NamedAddress): string {
  const address = asciiAddress(a.address) ?? a.address;
  if (a.name === '') return PLAIN_ADDRESS.test(address) ? address : `<${address}>`;
  return `${displayName(a.name)} <${address}>`;
}

/** Text that goes out as encoded-words: it is not printable ASCII, or a reader would take part
 *  of it for an encoded-word and decode it (RFC 2047 §5 lets readers decode even inside quotes). */
const needsEncodedWords = (text: string) => !/^[\x20-\x7e]*$/.test(text) || ENCODED_WORD.test(text);

/** A Keywords value (RFC 5322 §3.6.5: phrases parted by commas): as given when no phrase needs
 *  encoded-words, else each phrase written as a display name is, so that no comma goes inside an
 *  encoded-word (RFC 2047 §5(3)). */
export function formatPhraseList(value: string): string {
  if (!needsEncodedWords(value)) return value;
  return value.split(',').map((p) => p.trim()).filter((p) => p !== '').map(displayName).join(', ');
}

/** A name as a phrase: as it is when it can be, quoted, or with encoded-words (RFC 2047 §5(3))
 *  when it is not ASCII, would be read as encoded-words, or holds a word too long to fold. */
function displayName(name: string): string {
  if (needsEncodedWords(name)) return encodedPhrase(name);
  const written = ATOM_PHRASE.test(name) ? name : `"${name.replace(/[\\"]/g, '\\$&')}"`;
  // Measured as written: quoting doubles a backslash or a quote.
  return written.split(/[ \t]+/).some((w) => w.length > MAX_WORD) ? encodedPhrase(name) : written;
}

/**
 * The phrase with each run of words that need encoding as encoded-words (encodedWords), and
 * the words between them, plain atoms, as they are.
 */
function encodedPhrase(name: string): string {
  const out: string[] = [];
  let run: string[] = [];
  const endRun = () => {
    if (run.length > 0) out.push(...encodedWords(run));
    run = [];
  };
  // (White space in a phrase is only a separator: one space stands for any.)
  for (const word of name.split(' ').filter((w) => w !== '')) {
    // (Any "=?" is encoded: a reader could take one beside an encoded-word for the start of one.)
    if (/^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/.test(word) && word.length <= MAX_WORD && !word.includes('=?')) {
      endRun();
      out.push(word);
    } else {
      run.push(word);
    }
  }
  endRun();
  return out.join(' ');
}
