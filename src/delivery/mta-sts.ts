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
import type { StsPolicy } from '../store/store.ts';

/** §3.2: max_age is at most a year (31557600 s). */
const MAX_AGE_LIMIT = 31_557_600;
/** §3.3: a policy over 64 KiB is no policy (mta-sts-fetch.ts stops reading there). */
export const MAX_POLICY_BYTES = 64 * 1024;
/** What a domain's lookup came to is used for this long before it is looked up again; a policy
 *  that cannot be fetched is not asked for again for as long (§3.3: senders may rate-limit). */
const DECIDED_MS = 5 * 60_000;

/** The id of the one `v=STSv1` TXT record of `_mta-sts.<domain>` (§3.1); undefined when there is
 *  not exactly one, or it is malformed: the domain is then taken to have no policy. */
export function policyIdOf(records: string[][]): string | undefined {
  const sts = records.map((chunks) => chunks.join('')).filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (sts.length !== 1) return undefined;
  for (const field of sts[0]!.split(';').slice(1)) {
    const m = /^\s*id=([A-Za-z0-9]{1,32})\s*$/.exec(field);
    if (m) return m[1];
  }
  return undefined;
}

/** The policy text of §3.2, or undefined when it is none (a version other than STSv1, a mode or
 *  max_age out of their syntax, no mx in a mode that needs one). Unknown keys are ignored. */
export function parsePolicy(text: string): Pick<StsPolicy, 'mode' | 'mx' | 'maxAge'> | undefined {
  let version: string | undefined;
  let mode: string | undefined;
  let maxAge: number | undefined;
  const mx: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = /^([A-Za-z0-9_]+):[ \t]*(.*?)[ \t]*$/.exec(line);
    if (!m) continue;
    const [, key, value] = m as unknown as [string, string, string];
    if (key === 'version') version = value;
    else if (key === 'mode') mode = value;
    else if (key === 'max_age') maxAge = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
    else if (key === 'mx') mx.push(value.toLowerCase().replace(/\.$/, ''));
  }
  if (version !== 'STSv1' || maxAge === undefined || !(maxAge >= 0 && maxAge <= MAX_AGE_LIMIT)) return undefined;
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') return undefined;
  if (mode !== 'none' && mx.length === 0) return undefined;
  return { mode, mx, maxAge };
}

/** §4.1: a host matches a pattern that names it, or `*.` and its parent domain (one label). */
export function mxMatches(patterns: string[], host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return patterns.some((p) => (p.startsWith('*.') ? name.slice(name.indexOf('.') + 1) === p.slice(2) && name.indexOf('.') > 0 : name === p));
}

export interface MtaStsDeps {
  /** TXT records of a name; rejects with ENOTFOUND/ENODATA when there are none. */
  txt: (name: string) => Promise<string[][]>;
  /** The policy text of a domain, fetched over HTTPS (mta-sts-fetch.ts). */
  fetch: (domain: string) => Promise<string>;
  load: (domain: string) => Promise<StsPolicy | undefined>;
  save: (policy: StsPolicy) => Promise<void>;
  now?: () => number;
}

export class MtaSts {
  private readonly deps: MtaStsDeps;
  private readonly now: () => number;
  /** Each domain's lookup, under way or done, and until when it stands. */
  private readonly decided = new Map<string, { policy: Promise<StsPolicy | undefined>; until: number }>();

  constructor(deps: MtaStsDeps) {
    this.deps = deps;
    this.now = deps.now ?? Date.now;
  }

  /** The policy mail for `domain` goes by (enforce or testing); undefined when it has none, or
   *  one of mode none. Never rejects. */
  policyFor(domain: string): Promise<StsPolicy | undefined> {
    const key = domain.toLowerCase();
    const known = this.decided.get(key);
    if (known && known.until > this.now()) return known.policy;
    const policy = this.lookUp(key).then((p) => (p && p.mode !== 'none' ? p : undefined), () => undefined);
    if (this.decided.size >= 10_000) this.decided.delete(this.decided.keys().next().value!);
    this.decided.set(key, { policy, until: this.now() + DECIDED_MS });
    return policy;
  }

  private async lookUp(domain: string): Promise<StsPolicy | undefined> {
    const now = this.now();
    const stored = await this.deps.load(domain);
    const kept = stored && stored.fetched + stored.maxAge * 1000 > now ? stored : undefined;
    let id: string | undefined;
    try {
      id = policyIdOf(await this.deps.txt(`_mta-sts.${domain}`));
    } catch {
      // No record, or the lookup failed: a policy kept still stands (§5.1), an attacker may be
      // hiding the record.
      return kept;
    }
    if (id === undefined) return kept;
    // The same policy, not yet half its age: no need to fetch it again.
    if (kept && kept.id === id && now - kept.fetched < kept.maxAge * 500) return kept;
    let text: string;
    try {
      text = await this.deps.fetch(domain);
    } catch {
      return kept;
    }
    const parsed = parsePolicy(text);
    if (!parsed) return kept;
    const policy: StsPolicy = { domain, id, fetched: now, ...parsed };
    // Kept for the next lookups; one the store cannot keep still holds for this one.
    await this.deps.save(policy).catch(() => {});
    return policy;
  }
}
