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
 * True when the parser finds a display name in `value` that the text does not write as one. A
 * name comes only from `Name <address>` or from a comment, `address (Name)` (RFC 5322 §3.4);
 * the parser also reads `a@example.com b@example.com` as one address named after the other,
 * and the second recipient would be lost without a word. Comments are taken out first, so that
 * a name can only have come from a phrase.
 */
export function hasStrayName(value: string): boolean {
  let text = value;
  for (let before = ''; before !== text;) {
    before = text;
    text = text.replace(/\((?:[^()\\"]|\\.)*\)/g, ' ');
  }
  return addressparser(text, { flatten: true }).some((a) => {
    if (a.name === '' || a.address.trim() === '') return false;
    const escaped = a.address.trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return !new RegExp(`<\\s*${escaped}\\s*>`, 'i').test(text);
  });
}

/** The reason given for text that strayName finds. */
export function notAList(value: string): string {
  return `${JSON.stringify(value)} is not an address list: separate addresses with commas, and write a display name as Name <address>`;
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
