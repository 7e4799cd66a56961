import crypto from 'node:crypto';

const ALPHABET = '0123456789BCDFGHJKLMNPQRSTVWXYZ'; // no vowels: ids never spell words

/** A queue id: 14 characters, time-ordered prefix (so listings sort by age), random tail. */
export function newQueueId(now = Date.now()): string {
  let t = Math.floor(now / 1000);
  let head = '';
  for (let i = 0; i < 7; i++) {
    head = ALPHABET[t % ALPHABET.length] + head;
    t = Math.floor(t / ALPHABET.length);
  }
  let tail = '';
  for (const byte of crypto.randomBytes(7)) tail += ALPHABET[byte % ALPHABET.length];
  return head + tail;
}
