/**
 * Bearer tokens for the HTTP API. A token is 32 random bytes (256 bits), so a single SHA-256 is
 * the right hash to keep: nothing can be guessed offline, and a lookup by hash costs nothing.
 * Only the hash is stored; the token is shown once, when created.
 */
import crypto from 'node:crypto';

export const TOKEN_PREFIX = 'mn_';

/** Token names: what `token create NAME` accepts. */
export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function newToken(): string {
  return TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return crypto.createHash('sha256').update(token, 'utf8').digest('hex');
}
