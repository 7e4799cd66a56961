/** Reading stdin with a size bound: stops (and says so) as soon as the bound is passed. */

export class TooLarge extends Error {}

/** Reads all of stdin, or throws TooLarge once more than `max` bytes have arrived. */
export async function readStdinLimited(max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of process.stdin) {
    const chunk = c as Buffer;
    total += chunk.length;
    if (total > max) {
      process.stdin.destroy();
      throw new TooLarge(`more than ${max} bytes on stdin, over limits.max_message_size`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
