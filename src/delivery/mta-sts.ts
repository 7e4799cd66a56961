/**
 * MTA-STS (RFC 8461), the sending side: a domain that publishes a policy in `enforce` mode gets
 * its mail only from MX hosts its policy names, over TLS with a certificate valid for the host;
 * anything less is a temporary failure, never mail in clear. So an attacker who can forge DNS
 * answers or strip STARTTLS, but cannot get a certificate for the domain's policy host, can
 * neither read nor redirect it. `relay.mta_sts = false` turns it off.
 *
 * A policy is found by a TXT record at `_mta-sts.<domain>` (§3.1) and fetched over HTTPS from
 * `mta-sts.<domain>` (§3.3, mta-sts-fetch.ts); it is kept in the store for its max_age, so that
 * an attacker who later hides the TXT record or the policy host gets nothing (§5.1), and fetched
 * again when the record's id changes or half its max_age has passed. When no policy can be had
 * and none is kept, mail goes as to a domain without one (§5).
 */
import { aLabels } from '../ascii.ts';
import { remember } from '../bounded-map.ts';
import { isDomainName } from '../config/schema.ts';
import type { StsPolicy } from '../store/store.ts';

/** §3.2: max_age is at most a year (31557600 s); a longer one is taken as a year. */
const MAX_AGE_LIMIT = 31_557_600;
/** §3.3: a policy over 64 KiB is no policy (mta-sts-fetch.ts stops reading there). */
export const MAX_POLICY_BYTES = 64 * 1024;
/** What a domain's lookup came to is used for this long before it is looked up again (or until
 *  the policy it found ends, when sooner, but never less than DECIDED_MIN_MS: a policy of
 *  max_age 0 would have every connection look it up and fetch it); a policy that cannot be
 *  fetched is not asked for again for as long (§3.3: senders may limit how often they try). */
const DECIDED_MS = 5 * 60_000;
const DECIDED_MIN_MS = 60_000;
/** A policy kept is fetched again once it is this old, or half its max_age, whichever comes
 *  first (§10.2 asks for a refresh about daily), so that a change reaches us before it ends. */
const REFRESH_MS = 86_400_000;
/** Domains whose lookups are remembered in memory, at most (the least recently used go first). */
const DECIDED_MAX = 10_000;

/** The id of the one TXT record of `_mta-sts.<domain>` that begins "v=STSv1;" (§3.1: others are
 *  set aside); undefined when there is not exactly one, or it has no valid id: the domain is then
 *  taken to have no policy. */
export function policyIdOf(records: string[][]): string | undefined {
  const sts = records.map((chunks) => chunks.join('')).filter((r) => /^v=STSv1[ \t]*;/.test(r));
  if (sts.length !== 1) return undefined;
  for (const field of sts[0]!.split(';').slice(1)) {
    const m = /^[ \t]*id=([A-Za-z0-9]{1,32})[ \t]*$/.exec(field);
    if (m) return m[1];
  }
  return undefined;
}

/** An mx pattern of §3.2 in the form it is compared in (A-labels, lower case, no final dot), or
 *  undefined when it is none: a host name, or "*." and a domain. */
function mxPattern(value: string): string | undefined {
  const wild = value.startsWith('*.');
  const name = aLabels((wild ? value.slice(2) : value).replace(/\.$/, ''))?.toLowerCase();
  if (!name || !isDomainName(name)) return undefined;
  return wild ? `*.${name}` : name;
}

/**
 * The policy text of §3.2, or undefined when it is none: a version other than STSv1, a mode or
 * max_age out of their syntax or given twice, no valid mx in a mode that needs one. Unknown keys
 * and mx values that are no pattern are left out. Read a line at a time, each by its first ":"
 * (no pattern that backtracks: the text is a stranger's, 64 KiB of it).
 */
export function parsePolicy(text: string): Pick<StsPolicy, 'mode' | 'mx' | 'maxAge'> | undefined {
  const once = new Map<string, string>();
  const mx = new Set<string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon);
    // §3.2's WSP: spaces and tabs, no other kind of space.
    const value = line.slice(colon + 1).replace(/\r$/, '').replace(/^[ \t]+|[ \t]+$/g, '');
    if (key === 'mx') {
      const pattern = mxPattern(value);
      if (pattern) mx.add(pattern);
    } else if (key === 'version' || key === 'mode' || key === 'max_age') {
      if (once.has(key)) return undefined;
      once.set(key, value);
    }
  }
  const mode = once.get('mode');
  const age = once.get('max_age') ?? '';
  if (once.get('version') !== 'STSv1' || !/^\d{1,31}$/.test(age)) return undefined;
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return undefined;
  if (mode !== 'none' && mx.size === 0) return undefined;
  return { mode, mx: [...mx], maxAge: Math.min(Number(age), MAX_AGE_LIMIT) };
}

/** §4.1: a host matches a pattern that names it, or `*.` and its parent domain (one label). */
export function mxMatches(patterns: string[], host: string): boolean {
  const name = (aLabels(host.replace(/\.$/, '')) ?? host).toLowerCase();
  const dot = name.indexOf('.');
  return patterns.some((p) => (p.startsWith('*.') ? dot > 0 && name.slice(dot + 1) === p.slice(2) : name === p));
}

/** The policy as it applies at `now`: none once it has ended, or when its mode is none (§5). */
function applied(p: StsPolicy | undefined, now: number): StsPolicy | undefined {
  return p && p.mode !== 'none' && p.fetched + p.maxAge * 1000 > now ? p : undefined;
}

export interface MtaStsDeps {
  /** TXT records of a name; rejects with ENOTFOUND/ENODATA when there are none. */
  txt: (name: string) => Promise<string[][]>;
  /** The policy text of a domain, fetched over HTTPS (mta-sts-fetch.ts). */
  fetch: (domain: string) => Promise<string>;
  load: (domain: string) => Promise<StsPolicy | undefined>;
  save: (policy: StsPolicy) => Promise<void>;
  /** What the operator should hear: a policy that could not be had, or not kept. */
  log?: (fields: Record<string, unknown>, msg: string) => void;
  now?: () => number;
}

export class MtaSts {
  private readonly deps: MtaStsDeps;
  private readonly now: () => number;
  private readonly log: (fields: Record<string, unknown>, msg: string) => void;
  /** Each domain's lookup, under way or done, and until when it stands. */
  private readonly decided = new Map<string, { policy: Promise<StsPolicy | undefined>; until: number }>();

  constructor(deps: MtaStsDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? (() => {});
  }

  /** The policy mail for `domain` (in A-labels) goes by, enforce or testing; undefined when it
   *  has none, or one of mode none. Rejects when the policy kept for it cannot be read: its mail
   *  waits rather than go without it. */
  policyFor(domain: string): Promise<StsPolicy | undefined> {
    const key = domain.toLowerCase();
    const known = this.decided.get(key);
    if (known && known.until > this.now()) {
      // The most recently used last: the first to go when the map is full is the least used.
      remember(this.decided, key, known, DECIDED_MAX);
      return known.policy.then((p) => applied(p, this.now()));
    }
    const now = this.now();
    const entry = { policy: this.lookUp(key), until: now + DECIDED_MS };
    remember(this.decided, key, entry, DECIDED_MAX);
    entry.policy.then((p) => {
      // A policy that ends sooner is looked up again then (it is not used past its end: see
      // applied), a minute after this lookup at the soonest.
      if (p) entry.until = Math.max(now + DECIDED_MIN_MS, Math.min(entry.until, p.fetched + p.maxAge * 1000));
    }, () => {
      if (this.decided.get(key) === entry) this.decided.delete(key);
    });
    return entry.policy.then((p) => applied(p, this.now()));
  }

  private async lookUp(domain: string): Promise<StsPolicy | undefined> {
    const now = this.now();
    let stored: StsPolicy | undefined;
    try {
      stored = await this.deps.load(domain);
    } catch (err) {
      throw new Error(`the MTA-STS policy kept for ${domain} could not be read: ${(err as Error).message}`);
    }
    const kept = stored && stored.fetched + stored.maxAge * 1000 > now ? stored : undefined;
    let id: string | undefined;
    try {
      id = policyIdOf(await this.deps.txt(`_mta-sts.${domain}`));
    } catch (err) {
      // No record, or the lookup failed: a policy kept still stands (§5.1), an attacker may be
      // hiding the record.
      const code = (err as { code?: string }).code;
      if (kept && code !== 'ENOTFOUND' && code !== 'ENODATA') this.log({ domain, err: (err as Error).message }, 'the MTA-STS record could not be looked up; the policy kept stands');
      return kept;
    }
    if (id === undefined) return kept;
    // The same policy, not yet due for a refresh: no need to fetch it again.
    if (kept && kept.id === id && now - kept.fetched < Math.min(REFRESH_MS, kept.maxAge * 500)) return kept;
    let parsed: ReturnType<typeof parsePolicy>;
    try {
      parsed = parsePolicy(await this.deps.fetch(domain));
      if (!parsed) throw new Error('the policy is not one RFC 8461 section 3.2 describes');
    } catch (err) {
      this.log({ domain, err: (err as Error).message, kept: kept?.mode ?? 'none' }, 'the MTA-STS policy a domain names could not be fetched; its mail goes by the policy kept, if any');
      return kept;
    }
    const policy: StsPolicy = { domain, id, fetched: now, ...parsed };
    // Kept for the next lookups; one the store cannot keep still holds for this one.
    await this.deps.save(policy).catch((err: unknown) => this.log({ domain, err: (err as Error).message }, 'an MTA-STS policy could not be kept in the store'));
    return policy;
  }
}
