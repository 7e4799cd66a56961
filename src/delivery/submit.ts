/**
 * Local submission: what `mailnest send`, `mailnest sendmail` and the HTTP API share once a
 * message is built. The envelope is checked (addresses, recipient count, size), every recipient
 * is resolved (an unknown local address is refused, by name, before anything is written), and
 * the message goes through `acceptMessage` — the same durable path as SMTP DATA.
 */
import type { Context } from '../context.ts';
import { lookupAddress, parseMailbox, type Mailbox } from '../smtp/address.ts';
import { uniqueAddresses } from '../mime/addresses.ts';
import { acceptMessage, copiesOf, type ResolvedRecipient } from './accept.ts';
import { withoutForgedResults } from './auth-results.ts';
import { UNKNOWN_WHY } from './recipients.ts';
import { roomNeeded, roomNow, type Room } from '../store/free-space.ts';
import { NoRoom } from '../store/store.ts';

export type SubmitProblem = 'no_recipients' | 'bad_address' | 'too_many_recipients' | 'too_big' | 'unknown_recipient';

export class SubmitError extends Error {
  readonly problem: SubmitProblem;
  /** The addresses concerned, when the problem is about addresses. */
  readonly addresses: string[];
  constructor(problem: SubmitProblem, message: string, addresses: string[] = []) {
    super(message);
    this.problem = problem;
    this.addresses = addresses;
  }
}

export interface LocalSubmission {
  /** Envelope sender ('' for the null sender). */
  sender: string;
  recipients: string[];
  /** The whole message with CRLF line ends. */
  message: Buffer;
  /** The size held to limits.max_message_size, when that is not the message's own: for a
   *  message the caller wrote, what it handed in and what re-encoding added, not the fields
   *  mailnest completed (sendmail). */
  size?: number;
  /** The Received "with" keyword: "local" for the command line, "HTTP" for the API. */
  protocol: string;
  clientIp?: string;
  /** Who submitted it (an API token name, a login name), noted in Received. */
  submitter?: string;
  /** The running server's gauge of free space; a command reads it afresh. */
  room?: Room;
}

/** Checks, resolves and durably accepts; resolves with the queue id. Throws SubmitError. */
export async function submitLocal(ctx: Context, s: LocalSubmission): Promise<string> {
  const { limits } = ctx.config;
  if (s.sender !== '' && typeof parseMailbox(s.sender) === 'string') {
    throw new SubmitError('bad_address', `sender ${JSON.stringify(s.sender)} is not a valid address`, [s.sender]);
  }
  const recipients = uniqueAddresses(s.recipients);
  if (recipients.length === 0) throw new SubmitError('no_recipients', 'no recipients');
  const bad = recipients.filter((r) => typeof parseMailbox(r) === 'string');
  if (bad.length > 0) throw new SubmitError('bad_address', `not a valid address: ${bad.join(', ')}`, bad);
  if (recipients.length > limits.max_recipients) {
    throw new SubmitError('too_many_recipients', `${recipients.length} recipients; at most ${limits.max_recipients} are allowed (limits.max_recipients)`);
  }
  const size = s.size ?? s.message.length;
  if (size > limits.max_message_size) {
    throw new SubmitError('too_big', `the message is ${size} bytes; at most ${limits.max_message_size} are allowed (limits.max_message_size)`);
  }
  const resolved: ResolvedRecipient[] = [];
  const unknown: string[] = [];
  const why = new Map<string, string>();
  for (const address of recipients) {
    const lookup = lookupAddress(parseMailbox(address) as Mailbox);
    const resolution = await ctx.recipients.resolve(lookup);
    if (resolution.kind === 'unknown') {
      unknown.push(address);
      const stoodFor = ctx.recipients.forMachineName(lookup);
      if (resolution.why) why.set(address, UNKNOWN_WHY[resolution.why]);
      else if (stoodFor) why.set(address, `${stoodFor}, which mail to it is for`);
    } else resolved.push({ address, resolution });
  }
  if (unknown.length > 0) {
    const named = unknown.map((a) => (why.has(a) ? `${a} (${why.get(a)})` : a));
    throw new SubmitError('unknown_recipient', `no such local user or alias: ${named.join(', ')}`, unknown);
  }
  // The rule SMTP holds a message to before its 250: room for it and for the deletions that
  // free the disk again (docs/SMTP.md); the server's gauge, counted off by every message taken
  // (SMTP's too), or a reading made now for a command.
  const room = s.room ?? roomNow(ctx.config.data_dir);
  const copies = copiesOf(resolved);
  if (!room.take(s.message.length, copies)) {
    throw new NoRoom(`${room.bytes} bytes are free, and a message of ${s.message.length} bytes to ${copies} ${copies === 1 ? 'mailbox' : 'mailboxes and recipients'} needs ${roomNeeded(s.message.length, copies)}: twice its size, 1 KiB a copy, and 1 MiB for deletions`);
  }
  const { id } = await acceptMessage(ctx.store, {
    writtenHere: true,
    sender: s.sender,
    recipients: resolved,
    // Results that claim our host name come from no one we trust (RFC 8601 §5), a local
    // program's no more than a stranger's.
    body: withoutForgedResults([s.message], ctx.config.hostname),
    received: {
      by: ctx.config.hostname,
      with: s.protocol,
      ...(s.clientIp ? { clientIp: s.clientIp } : {}),
      ...(s.submitter ? { auth: s.submitter } : {}),
    },
  });
  return id;
}
