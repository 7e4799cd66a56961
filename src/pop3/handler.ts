/**
 * The POP3 protocol handler: makes a session per connection and performs its effects against
 * the Store — password check with the shared failed-login throttle, the maildrop lock
 * (locks.ts), streaming a message, and the UPDATE-state commit.
 */
import type { AuthThrottle } from '../auth/throttle.ts';
import { verifyPassword } from '../auth/password.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import type { ClientInfo, ProtocolHandler } from '../net/listener.ts';
import type { Session } from '../net/session.ts';
import { BodyMissing, messageBytes, type OpenedMessage, type Store } from '../store/store.ts';
import type { LoginResult, Pop3Effect, Pop3Owner, Pop3Result, QuitResult, RetrieveResult } from './effects.ts';
import type { MaildropLocks } from './locks.ts';
import { err } from './replies.ts';
import { Pop3Session } from './session.ts';

export type Pop3Kind = 'pop3' | 'pop3s';

export interface Pop3Deps {
  config: Config;
  store: Store;
  log: Logger;
  /** Shared with SMTP (one instance per process). */
  throttle: AuthThrottle;
  /** Shared by the pop3 and pop3s listeners. */
  locks: MaildropLocks;
  /** Test seams; the real clock by default. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

export function pop3Handler(deps: Pop3Deps, kind: Pop3Kind): ProtocolHandler<Pop3Effect, Pop3Result> {
  const { config, store, log, throttle, locks } = deps;
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const owners = new WeakMap<Session<Pop3Effect, Pop3Result>, Pop3Owner>();

  async function login(owner: Pop3Owner, username: string, password: string): Promise<LoginResult> {
    const ip = owner.client.remoteAddress;
    if (!(await throttle.begin(ip, now()))) return { type: 'blocked' };
    // Gone while its turn came: its password is not checked for nobody.
    if (owner.closed) {
      throttle.abandon(ip);
      return { type: 'temp' };
    }
    let good: boolean;
    let user: Awaited<ReturnType<typeof store.findUser>>;
    try {
      user = await store.findUser(username);
      // An unknown user costs the same hash as a known one (verifyPassword with undefined).
      good = await verifyPassword(password, user?.passwordHash, ip);
    } catch (err) {
      throttle.abandon(ip);
      throw err;
    }
    if (!good || !user) {
      const verdict = throttle.fail(ip, username, now());
      log.warn({ listener: kind, client: ip, user: username.slice(0, 256) }, 'authentication failed');
      if (verdict.delayMs > 0) await sleep(verdict.delayMs);
      return { type: 'auth-failed', disconnect: verdict.disconnect };
    }
    throttle.succeed(ip, username);
    // RFC 1939 §8: the lock is taken before the maildrop is read, so the listing is ours alone.
    if (!locks.acquire(user.id, owner)) return owner.closed ? { type: 'temp' } : { type: 'in-use' };
    try {
      const entries = await store.listMailbox(user.id);
      return { type: 'ok', userId: user.id, address: user.address, entries };
    } catch (e) {
      locks.release(owner);
      log.error({ err: e, listener: kind }, 'cannot list maildrop');
      return { type: 'temp' };
    }
  }

  async function retrieve(userId: number, uid: number): Promise<RetrieveResult> {
    let message: OpenedMessage | undefined;
    try {
      message = await store.openMessage(userId, uid);
    } catch (e) {
      // Gone for good (its body left out of a restored copy): said as a message no longer there,
      // and the session goes on, so that a client can go past it, or delete it.
      if (e instanceof BodyMissing) {
        log.warn({ listener: kind, uid, reason: e.message }, 'a message cannot be read: its body is not in data_dir; deleting it is all that can be done');
        return { type: 'missing' };
      }
      // Not gone, but not readable now (a damaged or unreadable store): said as such, and logged.
      log.error({ err: e, listener: kind, uid }, 'cannot read a message');
      return { type: 'failed' };
    }
    if (!message) return { type: 'missing' };
    // A message of one part is framed and sent in one write; a larger one is streamed.
    if (!message.rest) return { type: 'whole', parts: message.head };
    return { type: 'message', source: messageBytes(message), ...(message.recycle ? { recycle: message.recycle } : {}) };
  }

  async function quit(owner: Pop3Owner, userId: number, uids: number[]): Promise<QuitResult> {
    owner.quitting = true;
    try {
      // RFC 1939 §6: durable before the +OK; the store deletes in batches, and a failure half-way
      // leaves the rest. The lock is held until the last batch, even if the client has gone:
      // no session of the same user may list a maildrop that is changing (§8).
      await store.deleteMessages(userId, uids);
      return { type: 'committed' };
    } catch (e) {
      log.error({ err: e, listener: kind }, 'cannot commit deletions');
      return { type: 'commit-failed' };
    } finally {
      locks.release(owner);
    }
  }

  return {
    name: kind,
    pool: 'users',
    implicitTls: kind === 'pop3s',
    idleTimeoutMs: config.limits.pop3_idle_timeout,
    createSession(client: ClientInfo) {
      const owner: Pop3Owner = { client, closed: false };
      const session = new Pop3Session({
        owner,
        hostname: config.hostname,
        ...(client.tls ? { tls: client.tls } : {}),
        stls: kind === 'pop3',
        allowInsecure: config.auth.allow_insecure,
        maxLineLength: config.limits.max_line_length,
      });
      owners.set(session, owner);
      return session;
    },
    perform(effect: Pop3Effect): Promise<Pop3Result> {
      switch (effect.type) {
        case 'login': return login(effect.owner, effect.username, effect.password);
        case 'retrieve': return retrieve(effect.userId, effect.uid);
        case 'quit': return quit(effect.owner, effect.userId, effect.uids);
      }
    },
    refusal(reason: string) {
      return err(reason, 'SYS/TEMP');
    },
    ended(session) {
      const owner = owners.get(session);
      if (!owner) return;
      owner.closed = true;
      if (!owner.quitting) locks.release(owner);
    },
  };
}
