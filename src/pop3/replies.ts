/**
 * Reply lines. Status indicators per RFC 1939 §3; response codes in brackets per RFC 2449 §8
 * ([IN-USE], [LOGIN-DELAY]) and RFC 3206 ([SYS/TEMP], [SYS/PERM], [AUTH]).
 */

export type ResponseCode = 'IN-USE' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH';

export function ok(text = ''): string {
  return text === '' ? '+OK\r\n' : `+OK ${text}\r\n`;
}

export function err(text: string, code?: ResponseCode): string {
  return code ? `-ERR [${code}] ${text}\r\n` : `-ERR ${text}\r\n`;
}

/** A multi-line response (RFC 1939 §3); the lines here never start with ".". */
export function multiline(status: string, lines: string[]): string {
  return `+OK ${status}\r\n${lines.length > 0 ? lines.join('\r\n') + '\r\n' : ''}.\r\n`;
}

export interface CapaContext {
  /** USER and SASL are listed only where credentials may be sent (TLS or allow_insecure). */
  credentialsAllowed: boolean;
  /** STLS is listed on the plain port before TLS, in the AUTHORIZATION state (RFC 2595 §4). */
  offerStls: boolean;
}

/** RFC 2449 §5 CAPA, with the capabilities of §6 that apply. */
export function capabilities(c: CapaContext): string[] {
  const caps = ['TOP', 'UIDL'];
  if (c.credentialsAllowed) caps.push('USER', 'SASL PLAIN LOGIN');
  caps.push('RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING');
  if (c.offerStls) caps.push('STLS');
  // §6.7: mail is never deleted by the server on its own; §6.5: no delay between logins.
  caps.push('EXPIRE NEVER', 'LOGIN-DELAY 0', 'IMPLEMENTATION mailnest');
  return caps;
}
