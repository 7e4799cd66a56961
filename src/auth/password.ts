/**
 * Password hashes: scrypt from node:crypto (memory-hard, no native build), stored as
 * `$scrypt$N=<n>,r=<r>,p=<p>$<salt b64>$<hash b64>`; compared in constant time.
 */
import crypto from 'node:crypto';
import { promisify } from 'node:util';
import { clientKey } from '../net/client-key.ts';

const scryptNow = promisify(crypto.scrypt) as (pw: crypto.BinaryLike, salt: crypto.BinaryLike, len: number, opts: crypto.ScryptOptions) => Promise<Buffer>;

/**
 * scrypt runs in libuv's thread pool (four threads), where the store's flushes run too: a flood
 * of failed logins from many addresses kept every thread busy, and a message's 250 waited 11 s
 * behind the guesses. At most two hashes are computed at once. The rest wait their turn, and
 * the turns go round the clients (an IPv6 one by its /64): a client's login waits behind one
 * guess of each other client at most, not behind every guess sent before it.
 */
const AT_ONCE = 2;
let running = 0;
/** The waiting, by client, in the order the clients' turns come (a Map keeps it). */
const waiting = new Map<string, (() => void)[]>();

async function scrypt(pw: string, salt: Buffer, len: number, opts: crypto.ScryptOptions, client: string): Promise<Buffer> {
  if (running >= AT_ONCE) {
    await new Promise<void>((resolve) => {
      const key = clientKey(client);
      const line = waiting.get(key);
      if (line) line.push(resolve);
      else waiting.set(key, [resolve]);
    });
  } else {
    running++;
  }
  try {
    return await scryptNow(pw, salt, len, opts);
  } finally {
    // The slot passes to the next client in line, or is freed.
    const next = nextTurn();
    if (next) next();
    else running--;
  }
}

/** The first waiting client's first hash; the client goes to the back of the line. */
function nextTurn(): (() => void) | undefined {
  const first = waiting.entries().next();
  if (first.done) return undefined;
  const [key, line] = first.value;
  const next = line.shift()!;
  waiting.delete(key);
  if (line.length > 0) waiting.set(key, line);
  return next;
}

const PARAMS = { N: 16384, r: 8, p: 1 };
const KEYLEN = 32;

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.randomBytes(16);
  const hash = await scrypt(password.normalize('NFC'), salt, KEYLEN, { ...PARAMS, maxmem: 64 * 1024 * 1024 }, '');
  return `$scrypt$N=${PARAMS.N},r=${PARAMS.r},p=${PARAMS.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** A hash no password matches, verified against when the user is unknown so timing says nothing. */
const DUMMY = '$scrypt$N=16384,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/** `client`: the address the login comes from, whose turn it takes (see scrypt). */
export async function verifyPassword(password: string, stored: string | undefined, client = ''): Promise<boolean> {
  const m = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([^$]+)\$([^$]+)$/.exec(stored ?? DUMMY);
  if (!m) return false;
  const expected = Buffer.from(m[5]!, 'base64');
  const actual = await scrypt(password.normalize('NFC'), Buffer.from(m[4]!, 'base64'), expected.length, {
    N: Number(m[1]), r: Number(m[2]), p: Number(m[3]), maxmem: 64 * 1024 * 1024,
  }, client);
  return crypto.timingSafeEqual(actual, expected) && stored !== undefined;
}
