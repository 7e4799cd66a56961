/** One shared empty buffer: "nothing left" costs no allocation per call or per connection. */
export const EMPTY: Buffer = Buffer.alloc(0);
