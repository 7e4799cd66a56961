/** A message body as the store is given it: a list of buffers, written out with writev. */

/** The bytes in `chunks`. */
export function totalLength(chunks: Buffer[]): number {
  return chunks.reduce((n, c) => n + c.length, 0);
}

/** The bytes of `chunks` after the first `n`: what is left after a short write. */
export function after(chunks: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < chunks.length && n >= chunks[i]!.length) n -= chunks[i++]!.length;
  const rest = chunks.slice(i);
  if (n > 0) rest[0] = rest[0]!.subarray(n);
  return rest;
}
