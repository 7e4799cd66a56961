/**
 * Fetches a domain's MTA-STS policy (RFC 8461 §3.3): `GET /.well-known/mta-sts.txt` from
 * `mta-sts.<domain>` on port 443, the certificate checked for that name, `200` only and no
 * redirect followed, at most MAX_POLICY_BYTES, within a time limit. The host's address comes
 * from the DNS servers delivery uses (`dns_servers`), as MX hosts' do.
 */
import https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import type { SecureContext } from 'node:tls';
import { addressesOf, type DnsResolver } from './mx.ts';
import { MAX_POLICY_BYTES } from './mta-sts.ts';

export interface FetchOptions {
  resolver: Pick<DnsResolver, 'resolve4' | 'resolve6'>;
  timeoutMs: number;
  /** The certificates trusted (relay.ca_file's with Node's), when not Node's alone. */
  secureContext?: SecureContext;
  /** Ends a fetch under way (the server stops). */
  signal?: AbortSignal;
}

/** Node's lookup, answered from `resolver` (see addressesOf). */
function lookupWith(resolver: FetchOptions['resolver']): LookupFunction {
  return (hostname, options, callback) => {
    void addressesOf(resolver, hostname).then(({ addresses: all }) => {
      if (all.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), '', 4);
      const family = (a: string) => (net.isIPv6(a) ? 6 : 4);
      if (options.all) (callback as unknown as (err: null, addresses: { address: string; family: number }[]) => void)(null, all.map((address) => ({ address, family: family(address) })));
      else callback(null, all[0]!, family(all[0]!));
    });
  };
}

export function policyFetcher(opts: FetchOptions): (domain: string) => Promise<string> {
  const lookup = lookupWith(opts.resolver);
  return (domain) => new Promise<string>((resolve, reject) => {
    const host = `mta-sts.${domain}`;
    const req = https.get({
      host, port: 443, path: '/.well-known/mta-sts.txt', servername: host, lookup, agent: false,
      ...(opts.secureContext ? { secureContext: opts.secureContext } : {}), minVersion: 'TLSv1.2', headers: { accept: 'text/plain' },
      ...(opts.signal ? { signal: opts.signal } : {}),
    }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${host} answered ${res.statusCode} (RFC 8461 section 3.3: 200 only, no redirect followed)`));
      }
      // §3.3: the policy is text/plain.
      const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== 'text/plain') {
        res.resume();
        return reject(new Error(`${host} answered with ${type || 'no'} content type, not text/plain (RFC 8461 section 3.3)`));
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_POLICY_BYTES) return req.destroy(new Error(`${host}: the policy is over ${MAX_POLICY_BYTES} octets`));
        chunks.push(chunk);
      });
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    // The whole fetch, connection and all, within the limit.
    const timer = setTimeout(() => req.destroy(new Error(`${host}: no policy within ${opts.timeoutMs} ms`)), opts.timeoutMs);
    timer.unref();
    req.on('error', reject);
    req.on('close', () => clearTimeout(timer));
  });
}
