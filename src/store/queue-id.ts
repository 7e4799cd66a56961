import crypto from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZ'; // no vowels: ids never spell words

/** Random bytes drawn a page at a time: one call into the generator per 585 ids, not one each
 *  (a call costs a few microseconds, which every accepted message used to pay). */
const random = Buffer.alloc(4096);
let used = random.length;

/** A random letter of ALPHABET, every one as likely as the others: a byte of 248 or more
 *  (248 = 8 × 31) is drawn again. */
function randomLetter(): string {
  for (;;) {
    if (used === random.length) {
      crypto.randomFillSync(random);
      used = 0;
    }
    const byte = random[used++]!;
    if (byte < 248) return ALPHABET[byte % ALPHABET.length]!;
  }
}

/**
 * A queue id: 17 characters, a time-ordered prefix of 7 (so listings sort by age) and a random
 * tail of 10. Ids made in the same second by any number of processes differ unless their tails
 * do not: among 20,000 a second, with 31^10 tails, that is about one chance in four million (a
 * tail of 7, as ids had once, made it about one in 140, and a duplicate id fails its message's
 * commit).
 */
export function newQueueId(now = Date.now()): string {
  let t = Math.floor(now / 1000);
  let head = '';
  for (let i = 0; i < 7; i++) {
    head = ALPHABET[t % ALPHABET.length] + head;
    t = Math.floor(t / ALPHABET.length);
  }
  let tail = '';
  for (let i = 0; i < 10; i++) tail += randomLetter();
  return head + tail;
}
