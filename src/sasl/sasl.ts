/**
 * SASL mechanisms PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), shared by SMTP AUTH
 * (RFC 4954), POP3 AUTH (RFC 5034) and IMAP AUTHENTICATE. Sans-I/O: the protocol hands in each
 * client response (already base64-decoded) and gets back either a challenge to send or the
 * credentials to check.
 */

export type SaslStep =
  | { type: 'challenge'; challenge: string } // base64-encoded text for the continuation line
  | { type: 'credentials'; username: string; password: string }
  /** Refused without a password check: a PLAIN message that is not one (RFC 4616 §2), or an
   *  authorization not offered. Base64 that does not decode is the protocol's to refuse. */
  | { type: 'refused'; message: string };

export const MECHANISMS = ['PLAIN', 'LOGIN'] as const;
export type Mechanism = (typeof MECHANISMS)[number];

export function isMechanism(name: string): name is Mechanism {
  return (MECHANISMS as readonly string[]).includes(name);
}

/** Decodes one base64 client response strictly; undefined when it is not base64. */
export function decodeBase64(text: string): Buffer | undefined {
  if (text === '=') return Buffer.alloc(0); // RFC 4954 §4: "=" is an empty initial response
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

export class SaslExchange {
  readonly mechanism: Mechanism;
  private username: string | undefined;

  constructor(mechanism: Mechanism) {
    this.mechanism = mechanism;
  }

  /** The first step: with an initial response, process it; without, the first challenge. */
  start(initial: Buffer | undefined): SaslStep {
    if (initial === undefined) {
      // PLAIN: an empty challenge (RFC 4616 §2); LOGIN: "Username:" as every client expects.
      return { type: 'challenge', challenge: this.mechanism === 'PLAIN' ? '' : Buffer.from('Username:').toString('base64') };
    }
    return this.respond(initial);
  }

  respond(response: Buffer): SaslStep {
    if (this.mechanism === 'PLAIN') return plain(response);
    if (this.username === undefined) {
      this.username = response.toString('utf8');
      return { type: 'challenge', challenge: Buffer.from('Password:').toString('base64') };
    }
    return { type: 'credentials', username: this.username, password: response.toString('utf8') };
  }
}

/** RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd. */
function plain(response: Buffer): SaslStep {
  const parts = response.toString('utf8').split('\0');
  // RFC 4954 §4 keeps 501 for what does not decode; what decodes to no PLAIN message fails
  // authentication, 535.
  if (parts.length !== 3) return { type: 'refused', message: 'PLAIN response must be authzid NUL authcid NUL password' };
  const [authzid, authcid, password] = parts as [string, string, string];
  if (authcid === '') return { type: 'refused', message: 'PLAIN response has an empty user name' };
  // Acting as another user (a non-empty authzid different from authcid) is not offered: the
  // authentication fails (RFC 4616 §2), it is no syntax error.
  if (authzid !== '' && authzid.toLowerCase() !== authcid.toLowerCase()) {
    return { type: 'refused', message: 'acting as another user is not allowed: the authorization identity must be empty or the login name' };
  }
  return { type: 'credentials', username: authcid, password };
}
