/**
 * Where a recipient address goes: to local mailboxes (aliases expanded, each user once), to
 * the outbound queue, or nowhere (an unknown local address). One place for the rule of what
 * "local" means, used by SMTP RCPT, VRFY/EXPN, `mailnest send`, sendmail and the HTTP API.
 */
import { machineNames } from '../config/schema.ts';
import type { Store, UserRecord } from '../store/store.ts';
import { addressKey, domainKey } from '../store/store.ts';

export type Resolution =
  /** Local users (deduplicated) and any non-local targets that local aliases point to. */
  | { kind: 'local'; users: UserRecord[]; forward: string[] }
  /** The domain is ours but the address reaches nobody: no user or alias has it, or it is an
   *  alias whose targets only lead back to it (`loop`), or deeper than MAX_ALIAS_DEPTH (`deep`),
   *  or to local addresses that do not exist (`dangling`). */
  | { kind: 'unknown'; why?: UnknownWhy }
  /** The domain is not ours: the message goes to the outbound queue. */
  | { kind: 'remote' };

export type UnknownWhy = 'loop' | 'deep' | 'dangling';

/** The addresses at other domains a recipient makes the message go to: itself when it is one,
 *  what a local alias sends on otherwise (limits.max_outgoing_per_day counts them). */
export function outboundOf(resolution: Resolution): number {
  return resolution.kind === 'remote' ? 1 : resolution.kind === 'local' ? resolution.forward.length : 0;
}

/** How deep aliases may point to aliases: a chain is followed no further. */
export const MAX_ALIAS_DEPTH = 8;

/** Why an alias reaches nobody, in the words every refusal of it uses. */
export const UNKNOWN_WHY: Record<UnknownWhy, string> = {
  loop: 'its aliases lead back to themselves',
  deep: `its aliases lead through more than ${MAX_ALIAS_DEPTH} others, and no more are followed`,
  dangling: 'an alias whose targets do not exist',
};

/** Sub-addressing: `user+tag@domain` reaches `user@domain` (as Postfix's recipient_delimiter). */
const TAG_DELIMITER = '+';

/** The name of a domain's catch-all alias, which takes mail for any address there that no
 *  user, alias or sub-address has: `@domain`, Postfix's form. */
export function catchAllOf(domain: string): string {
  return `@${domain}`;
}

export function splitAddress(address: string): { local: string; domain: string } {
  const at = address.lastIndexOf('@');
  return at < 0 ? { local: address, domain: '' } : { local: address.slice(0, at), domain: address.slice(at + 1) };
}

/** The targets of the alias named `address`, if it is one. */
type AliasLookup = (address: string) => Promise<string[] | undefined>;

/** What an expansion has found so far. */
interface Expansion {
  users: Map<number, UserRecord>;
  forward: Map<string, string>;
  /** Every address met so far, with the least depth it was followed at: one met again nearer
   *  the top is followed again, so that what it reaches does not depend on the order of a
   *  list's targets (met first at the end of a chain too deep, it was cut off there). */
  seen: Map<string, number>;
  /** The addresses of the alias chain being followed now. */
  path: Set<string>;
  loop: boolean;
  /** The aliases met past MAX_ALIAS_DEPTH and not followed: none of them followed by a shorter
   *  way since, when the expansion ends, is a chain too deep. */
  cut: Set<string>;
  /** An alias was met on the way. */
  alias: boolean;
  aliasTargets: AliasLookup;
}

/** The names every local domain answers to without a user or alias of that name: the
 *  postmaster (RFC 5321 §4.5.1), and MAILER-DAEMON, the sender of mailnest's reports, to which
 *  their readers reply: both the domain's postmaster. */
const POSTMASTER_NAMES = new Set(['postmaster', 'mailer-daemon']);

export class Recipients {
  private readonly store: Store;
  private readonly domains: Set<string>;
  /** The machine's own names, those of them that are none of `domains`: the host name and
   *  `localhost`. They are no mail domains, but mail to them stays here: `<name>@<one of them>`
   *  is `<name>@<first domain>`, as Postfix's default destinations ($myhostname, localhost)
   *  reach the same people through its aliases. So what cron, fail2ban and other programs send
   *  to root@localhost or root@<host name> arrives, and so do replies to mailnest's reports,
   *  which come from MAILER-DAEMON@<host name>. */
  private readonly hostNames: Set<string>;
  /** The first of `domains`, whose names the machine's names are. */
  private readonly firstDomain: string;

  constructor(store: Store, domains: string[], hostname: string) {
    this.store = store;
    this.domains = new Set(domains.map(domainKey));
    this.firstDomain = domains[0]!;
    this.hostNames = new Set(machineNames(hostname).map(domainKey).filter((d) => !this.domains.has(d)));
  }

  /** The address at the first domain that one at the machine's own name stands for (see
   *  hostNames); undefined for any other address. */
  forMachineName(address: string): string | undefined {
    const { local, domain } = splitAddress(address);
    return this.isHostName(domain) ? `${local}@${this.firstDomain}` : undefined;
  }

  /** The machine's own names that are not mail domains (see hostNames). */
  isHostName(domain: string): boolean {
    return this.hostNames.has(domainKey(domain));
  }

  isLocalDomain(domain: string): boolean {
    return this.domains.has(domainKey(domain));
  }

  /** Mail for the address stays here: a local domain's, or one of the machine's names'. */
  private isOurs(address: string): boolean {
    const { domain } = splitAddress(address);
    return this.isLocalDomain(domain) || this.isHostName(domain);
  }

  /** Resolves an (unquoted) address; aliases may name users, other aliases or remote addresses. */
  resolve(address: string): Promise<Resolution> {
    return this.resolveWith(address, async (a) => (await this.store.findAlias(a))?.targets);
  }

  /**
   * Why adding `targets` to `alias` would send mail to nobody, if it would (`alias add` refuses
   * it): a loop through the alias, or a chain past MAX_ALIAS_DEPTH from it or from an alias that
   * leads to it, which goes as much deeper (`by` names that one). An alias too deep already is
   * no reason.
   */
  async refusalOfTargets(alias: string, targets: string[]): Promise<{ why: 'loop' | 'deep'; by?: string } | undefined> {
    const after = await this.resolveWithTargets(alias, alias, targets);
    if (after.kind === 'unknown' && (after.why === 'loop' || after.why === 'deep')) return { why: after.why };
    for (const other of await this.store.listAliases()) {
      if (addressKey(other.alias) === addressKey(alias)) continue;
      if (isDeep(await this.resolveWithTargets(other.alias, alias, targets)) && !isDeep(await this.resolve(other.alias))) return { why: 'deep', by: other.alias };
    }
    return undefined;
  }

  /** Where `address` would lead once `targets` were added to `alias`. */
  private resolveWithTargets(address: string, alias: string, targets: string[]): Promise<Resolution> {
    return this.resolveWith(address, async (a) => {
      const existing = (await this.store.findAlias(a))?.targets;
      return addressKey(a) === addressKey(alias) ? [...(existing ?? []), ...targets] : existing;
    });
  }

  private async resolveWith(address: string, aliasTargets: AliasLookup): Promise<Resolution> {
    if (!this.isOurs(address)) return { kind: 'remote' };
    const x: Expansion = { users: new Map(), forward: new Map(), seen: new Map(), path: new Set(), loop: false, cut: new Set(), alias: false, aliasTargets };
    if (!(await this.expand(address, 0, x))) return x.loop ? { kind: 'unknown', why: 'loop' } : x.cut.size > 0 ? { kind: 'unknown', why: 'deep' } : x.alias ? { kind: 'unknown', why: 'dangling' } : { kind: 'unknown' };
    return { kind: 'local', users: [...x.users.values()], forward: [...x.forward.values()] };
  }

  /** Adds what `address` reaches to `x`; false when it reaches nobody new. */
  private async expand(address: string, depth: number, x: Expansion): Promise<boolean> {
    const key = addressKey(address);
    // Back to an address of the chain being followed: a loop. Met before by another way (two
    // lists naming one user), as near the top or nearer: counted then.
    if (x.path.has(key)) {
      x.loop = true;
      return false;
    }
    const before = x.seen.get(key);
    if (before !== undefined && before <= depth) return false;
    x.seen.set(key, depth);
    x.path.add(key);
    try {
      return await this.reach(address, depth, x);
    } finally {
      x.path.delete(key);
    }
  }

  private async reach(address: string, depth: number, x: Expansion): Promise<boolean> {
    const key = addressKey(address);
    if (!this.isOurs(address)) {
      x.forward.set(key, address);
      return true;
    }
    const { local, domain } = splitAddress(address);
    // The machine's names have no users nor aliases of their own: the first domain's, as they
    // are (no alias step: the chain that follows may be as deep as from the first domain).
    const stoodFor = this.forMachineName(address);
    if (stoodFor) return this.expand(stoodFor, depth, x);
    // A user of that name wins over an alias of the same name.
    const user = await this.store.findUser(address);
    if (user) {
      x.users.set(user.id, user);
      return true;
    }
    const targets = await x.aliasTargets(address);
    if (targets) {
      x.alias = true;
      if (depth >= MAX_ALIAS_DEPTH) {
        x.cut.add(key);
        return false;
      }
      x.cut.delete(key);
      let any = false;
      for (const t of targets) any = (await this.expand(t, depth + 1, x)) || any;
      return any;
    }
    // The domain's catch-all itself, when it has none: nothing further.
    if (local === '') return false;
    // The steps to the address without its tag and to the catch-all are no aliases (as the
    // machine's names are not): they do not count against MAX_ALIAS_DEPTH, so that what an
    // alias reaches is the same from its own name, from a sub-address or from a name it catches
    // (and `alias add`, which checks from its name, sees it).
    const tag = local.indexOf(TAG_DELIMITER);
    if (tag > 0) return this.expand(`${local.slice(0, tag)}@${domain}`, depth, x);
    const name = local.toLowerCase();
    // An address nobody has goes to the domain's catch-all alias, when it has one (as Postfix's
    // "@domain" virtual alias): after users, aliases and sub-addresses. The postmaster's names
    // keep their own rule below, so that they reach a person whatever the catch-all takes.
    if (!POSTMASTER_NAMES.has(name)) return this.expand(catchAllOf(domain), depth, x);
    // MAILER-DAEMON is the postmaster, whoever that is (an alias of postmaster included).
    if (name !== 'postmaster') return this.expand(`postmaster@${domain}`, depth + 1, x);
    // RFC 5321 §4.5.1: every local domain has a postmaster; unless a user or alias has that
    // name, it is the domain's first user, or the first user of all for a domain without any;
    // with no user at all, whom the domain's catch-all names.
    const first = await this.postmaster(domain);
    if (!first) return this.expand(catchAllOf(domain), depth, x);
    x.users.set(first.id, first);
    return true;
  }

  private async postmaster(domain: string): Promise<UserRecord | undefined> {
    const own = await this.store.firstUser(domain);
    if (own) return own;
    let first: UserRecord | undefined;
    for (const d of this.domains) {
      const u = await this.store.firstUser(d);
      if (u && (!first || u.id < first.id)) first = u;
    }
    return first;
  }

  /** The catch-all through which `address` reaches someone, when that is the only way it does
   *  (no user, alias or sub-address has it): what `alias add` and the removals tell the operator. */
  async caughtBy(address: string): Promise<string | undefined> {
    if (!this.isOurs(address) || (await this.resolve(address)).kind === 'unknown') return undefined;
    const own = await this.resolveWith(address, async (a) => (splitAddress(a).local === '' ? undefined : (await this.store.findAlias(a))?.targets));
    return own.kind === 'unknown' ? catchAllOf(splitAddress(this.forMachineName(address) ?? address).domain) : undefined;
  }

  /** The postmaster of a local domain or of the machine's names (RFC 5321 §4.5.1), which takes
   *  mail that other addresses refuse: a client in a blocklist may still write to it. */
  isPostmaster(address: string): boolean {
    return splitAddress(address).local.toLowerCase() === 'postmaster' && this.isOurs(address);
  }

  /** A user may send as its own address and as any alias that delivers to it (submission MAIL
   *  FROM); at the machine's names, only as the postmaster's names, whose replies come back here:
   *  another address there is no address anyone elsewhere can answer. */
  async mayUseSender(user: UserRecord, sender: string): Promise<boolean> {
    if (addressKey(sender) === addressKey(user.address)) return true;
    const { local, domain } = splitAddress(sender);
    if (this.isHostName(domain) && !POSTMASTER_NAMES.has(local.toLowerCase())) return false;
    const r = await this.resolve(sender);
    return r.kind === 'local' && r.users.some((u) => u.id === user.id);
  }
}

/** An alias that reaches nobody because its chain goes past MAX_ALIAS_DEPTH. */
function isDeep(r: Resolution): boolean {
  return r.kind === 'unknown' && r.why === 'deep';
}
