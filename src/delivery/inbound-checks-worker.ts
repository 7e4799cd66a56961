/**
 * The worker thread behind InboundChecker: runs mailauth's authenticate (SPF, DKIM, ARC, DMARC)
 * away from the event loop that serves every session. Its DKIM body hashes read the whole
 * message in JavaScript: a 25 MB message held every session for 200-400 ms. Its DNS questions
 * go to the parent, whose cache answers them (`{ ask, token, name, rrtype }`, answered
 * `{ answer, value | error }`).
 */
import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { authenticate, type AuthenticateResult } from 'mailauth';
import { atLineEnds } from '../chunks.ts';

export interface CheckRequest {
  id: number;
  /** Names the resolver the DNS questions of this check go to. */
  token: number;
  message: Uint8Array;
  /** authenticate's options but the resolver, which is the parent's. */
  options: Omit<Parameters<typeof authenticate>[1], 'resolver'>;
}

/** What the parent reads of authenticate's result. */
export interface Checked {
  id: number;
  result: Pick<AuthenticateResult, 'headers' | 'dmarc' | 'spf' | 'dkim'>;
  error?: undefined;
}

export type CheckResponse = Checked | { id: number; error: string };

/** A DNS question of the worker's, for the check `token` names. */
export interface DnsQuestion {
  ask: number;
  token: number;
  name: string;
  rrtype: string;
}

export interface DnsAnswer {
  answer: number;
  value?: unknown;
  error?: { message: string; code?: string };
}

const port = parentPort!;
let nextQuestion = 1;
const asked = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

/** The resolver of one check: its questions go to the parent. */
const resolverFor = (token: number) => (name: string, rrtype: string): Promise<never> => {
  const ask = nextQuestion++;
  return new Promise((resolve, reject) => {
    asked.set(ask, { resolve: resolve as (v: unknown) => void, reject });
    port.postMessage({ ask, token, name, rrtype } satisfies DnsQuestion);
  });
};

port.on('message', async (m: CheckRequest | DnsAnswer) => {
  if ('answer' in m) {
    const w = asked.get(m.answer);
    asked.delete(m.answer);
    if (m.error) w?.reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
    else w?.resolve(m.value);
    return;
  }
  let response: CheckResponse;
  try {
    // In pieces that end lines: see atLineEnds.
    const message = Buffer.from(m.message.buffer, m.message.byteOffset, m.message.length);
    const r = await authenticate(Readable.from(atLineEnds(message)), { ...m.options, resolver: resolverFor(m.token) });
    // Only what the parent reads, as plain data.
    response = { id: m.id, result: JSON.parse(JSON.stringify({ headers: r.headers, dmarc: r.dmarc, spf: r.spf, dkim: r.dkim })) };
  } catch (err) {
    response = { id: m.id, error: (err as Error).message ?? String(err) };
  }
  port.postMessage(response);
});
