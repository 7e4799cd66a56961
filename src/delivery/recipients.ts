/**
 * Where a recipient address goes: to local mailboxes (aliases expanded, each user once), to
 * the outbound queue, or nowhere (an unknown local address). One place for the rule of what
 * "local" means, used by SMTP RCPT, VRFY/EXPN, `mailnest send`, sendmail and the HTTP API.
 */
import type { Store, UserRecord } from '../store/store.ts';
import { addressKey } from '../store/store.ts';

export type Resolution =
  /** Local users (deduplicated) and any non-local targets that local aliases point to. */
  | { kind: 'local'; users: UserRecord[]; forward: string[] }
  /** The domain is ours but no user or alias has this address. */
  | { kind: 'unknown' }
  /** The domain is not ours: the message goes to the outbound queue. */
  | { kind: 'remote' };

/** How deep aliases may point to aliases before the chain is taken to be a loop. */
const MAX_ALIAS_DEPTH = 8;

export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, domain: '' } : { local: address.slice(0, at), domain: address.slice(at + 1) };
}

export class Recipients {
  private readonly store: Store;
  private readonly domains: Set<string>;

  constructor(store: Store, domains: string[]) {
    this.store = store;
    this.domains = new Set(domains.map((d) => d.toLowerCase()));
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(domain.toLowerCase());
  }

  isLocalAddress(address: string): boolean {
    return this.isLocalDomain(splitAddress(address).domain);
  }

  /** Resolves an (unquoted) address; aliases may name users, other aliases or remote addresses. */
  async resolve(address: string): Promise<Resolution> {
    if (!this.isLocalAddress(address)) return { kind: 'remote' };
    const users = new Map<number, UserRecord>();
    const forward = new Map<string, string>();
    const seen = new Set<string>();
    const found = await this.expand(address, 0, users, forward, seen);
    if (!found) return { kind: 'unknown' };
    return { kind: 'local', users: [...users.values()], forward: [...forward.values()] };
  }

  private async expand(address: string, depth: number, users: Map<number, UserRecord>, forward: Map<string, string>, seen: Set<string>): Promise<boolean> {
    const key = addressKey(address);
    if (seen.has(key)) return true;
    seen.add(key);
    if (!this.isLocalAddress(address)) {
      forward.set(key, address);
      return true;
    }
    // A user of that name wins over an alias of the same name.
    const user = await this.store.findUser(address);
    if (user) {
      users.set(user.id, user);
      return true;
    }
    const alias = await this.store.findAlias(address);
    if (!alias || depth >= MAX_ALIAS_DEPTH) return false;
    let any = false;
    for (const t of alias.targets) any = (await this.expand(t, depth + 1, users, forward, seen)) || any;
    return any;
  }

  /** A user may send as its own address and as any alias that delivers to it (submission MAIL FROM). */
  async mayUseSender(user: UserRecord, sender: string): Promise<boolean> {
    if (addressKey(sender) === addressKey(user.address)) return true;
    const r = await this.resolve(sender);
    return r.kind === 'local' && r.users.some((u) => u.id === user.id);
  }
}
