import crypto from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZ'; // no vowels: ids never spell words

/** Random bytes drawn a page at a time: one call into the generator per 585 ids, not one each
 *  (a call costs a few microseconds, which every accepted message used to pay). */
const random = Buffer.alloc(4096);
let used = random.length;

function randomByte(): number {
  if (used === random.length) {
    crypto.randomFillSync(random);
    used = 0;
  }
  return random[used++]!;
}

/** A queue id: 14 characters, time-ordered prefix (so listings sort by age), random tail. */
export function newQueueId(now = Date.now()): string {
  let t = Math.floor(now / 1000);
  let head = '';
  for (let i = 0; i < 7; i++) {
    head = ALPHABET[t % ALPHABET.length] + head;
    t = Math.floor(t / ALPHABET.length);
  }
  let tail = '';
  for (let i = 0; i < 7; i++) tail += ALPHABET[randomByte() % ALPHABET.length];
  return head + tail;
}
