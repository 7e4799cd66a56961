/**
 * Authentication-Results fields that claim to be ours. mailnest writes one, under its host name
 * as authserv-id, for mail from the internet, and readers and filters trust the results it
 * carries. RFC 8601 §5: an MTA MUST delete any such field that claims, by its authserv-id, to
 * come from within its trust boundary when it did not. No message handed to mailnest carries
 * one that mailnest wrote, its own being added among the trace fields afterwards: the SMTP
 * handler and local submission (`send`, `sendmail`, the HTTP API) take them out as a message
 * arrives, before anything reads it. The rest of the message stays exactly as received.
 */
import { unfoldedValue, withoutFields } from '../mime/header-section.ts';
import { withoutComments } from '../mime/structured-value.ts';
import { domainKey } from '../store/store.ts';

const NAME = /^authentication-results[ \t]*:/i;

/** The message without the Authentication-Results fields whose authserv-id is `authservId`
 *  (compared without regard to case); the same chunks when it has none. */
export function withoutForgedResults(message: Buffer[], authservId: string): Buffer[] {
  const id = asHost(authservId);
  return withoutFields(message, /authentication-results/i, (f) => NAME.test(f) && claimedId(f) === id);
}

/** The authserv-id of an Authentication-Results field, as a host name (RFC 8601 §2.2: the
 *  value before the first ";", a token or a quoted string, with comments and an optional version
 *  number around it). */
function claimedId(field: string): string {
  const value = withoutComments(unfoldedValue(field));
  const token = value.trim().split(/[;\s]/)[0] ?? '';
  return asHost(token.replace(/^"(.*)"$/, '$1').replace(/\\(.)/g, '$1'));
}

/** A host name as compared: without a final dot, lower case, in A-labels. */
function asHost(name: string): string {
  return domainKey(name.replace(/\.$/, ''));
}
