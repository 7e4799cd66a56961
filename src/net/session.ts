/**
 * The contract between a sans-I/O protocol session (SMTP, POP3, ...) and the connection that
 * drives it. The session never touches a socket, the clock or the store: it takes bytes and
 * events in and hands back Outputs, in order. Anything that needs the world (checking a
 * password, committing a message) is an `effect` the connection performs before calling
 * `resolve` with its result; input that arrives meanwhile waits in the session's buffer, so
 * pipelined commands are answered in order.
 */

export type Output<E> =
  | { type: 'write'; data: string | Buffer | Buffer[] }
  /**
   * Send everything the source yields (e.g. a message for RETR), with back-pressure. The next
   * batch is asked for only once the one before is on the network (written, not just queued),
   * so a source may then reuse the memory of what it yielded.
   */
  | { type: 'stream'; source: AsyncIterable<Buffer | Buffer[]> }
  /** Perform the effect and call `resolve` with its result. */
  | { type: 'effect'; effect: E }
  /** Upgrade to TLS now (RFC 3207 / RFC 2595), then call `tlsStarted`. */
  | { type: 'starttls' }
  /**
   * Call `receive` again, with no bytes, in a later turn: the session stopped with input still
   * buffered once its replies made a turn's worth (pipelined commands by the thousand in one
   * read). Written first, they wait for the client to take them (RFC 2920 §3.1).
   */
  | { type: 'more' }
  /** Flush what was written, then close. */
  | { type: 'close' }
  /** The session refused a message or a recipient, for the count of refusals by reason; in a
   *  transaction, with its sender and the recipients refused, for the log. `warn`: a refusal
   *  the operator should hear of (logged as a warning, not as news); `detail`: what the
   *  reason leaves out (which blocklist). */
  | { type: 'refused'; reason: string; envelope?: { from: string; to: string[] }; warn?: true; detail?: string };

/**
 * Octets of replies that one call into a session makes before it leaves the rest of its input
 * for a later turn (`more`). A read of pipelined EHLOs, eight thousand in 64 KiB, made 1.5 MB of
 * replies in one turn, and twenty-five such clients held a new session's greeting for 2 s.
 */
export const OUTPUT_PER_TURN = 16 * 1024;

export interface TlsInfo {
  protocol: string;
  cipher: string;
}

/** A connection's TLS as the session log line gives it: "TLSv1.3 TLS_AES_256_GCM_SHA384". */
export function describeTls(info: TlsInfo): string {
  return `${info.protocol} ${info.cipher}`;
}

/** What is logged about a session when it ends (one line per session). */
export interface SessionSummary {
  user?: string;
  outcome: string;
  [key: string]: unknown;
}

export interface Session<E, R = unknown> {
  /** The greeting. */
  start(): Output<E>[];
  receive(data: Buffer): Output<E>[];
  resolve(result: R): Output<E>[];
  tlsStarted(info: TlsInfo): Output<E>[];
  /** The idle timer ran out. */
  timeout(): Output<E>[];
  /** The server is stopping: close now if idle, else after the current transaction. */
  shutdown(): Output<E>[];
  /** An unexpected error inside this session: the last words before closing. */
  failure(): Output<E>[];
  /** The connection has closed, whoever closed it: what the session holds goes. */
  closed?(): void;
  summary(): SessionSummary;
}
