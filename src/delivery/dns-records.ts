/**
 * The DNS records a domain publishes for mailnest: MX (where its mail goes), SPF (RFC 7208:
 * which hosts send for it), DKIM (RFC 6376: the public key of its signing key) and DMARC
 * (RFC 7489: what receivers do with mail that fails both), as zone-file lines.
 */
import type { Config } from '../config/schema.ts';
import { domainKey } from '../store/store.ts';
import { dkimRecord, ensureDkimKey } from './dkim.ts';

export interface DnsRecord {
  name: string;
  type: 'MX' | 'TXT';
  value: string;
  /** Why it is there, printed as a comment above it. */
  note: string;
}

/** Whether `name` reads as an IPv4 address, not a domain name: its last label is all digits
 *  (RFC 3696 §2: no top-level domain is). */
export function endsInNumber(name: string): boolean {
  return /(?:^|\.)\d+$/.test(name.replace(/\.$/, ''));
}

/** What is said of a mail domain in `domains` that reads as an IP address. */
export function domainIsAddressWarning(domain: string): string {
  return `the mail domain ${JSON.stringify(domain)} reads as an IP address, not a domain name: no other server sends mail to it (an address is written user@[${domain}], which is no local domain); put the domain of your addresses in "domains"`;
}

/** Whether `host` names a host that other servers can look up: an MX target and an EHLO name
 *  are fully qualified (RFC 5321 §2.3.5), a bare machine name is not, nor an address. */
export function isFullyQualified(host: string): boolean {
  return host.replace(/\.$/, '').includes('.') && !endsInNumber(host);
}

/** TXT strings are at most 255 octets each (RFC 1035 §3.3); longer values are split. */
export function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return parts.join(' ');
}

/** The records for `domain`; the DKIM one (and its key) only when signing is on. */
export function dnsRecords(config: Config, domain: string): DnsRecord[] {
  const d = domainKey(domain.replace(/\.$/, ''));
  const host = config.hostname.replace(/\.$/, '');
  const spfNote = config.relay.smarthost
    ? `SPF: this server and the MX may send for ${d}; mail is relayed through ${config.relay.smarthost}, so add that provider's SPF include too`
    : `SPF: only the hosts of the MX record send mail for ${d}`;
  return [
    { name: `${d}.`, type: 'MX', value: `10 ${host}.`, note: `MX: mail for ${d} goes to ${host} (which needs an A/AAAA record and a PTR back to it)` },
    { name: `${d}.`, type: 'TXT', value: 'v=spf1 mx -all', note: spfNote },
    ...(config.dkim.enabled ? [dkimRecordFor(config, d)] : []),
    { name: `_dmarc.${d}.`, type: 'TXT', value: `v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@${d}`, note: 'DMARC: mail claiming to be from this domain that fails SPF and DKIM is quarantined; reports go to postmaster' },
  ];
}

function dkimRecordFor(config: Config, d: string): DnsRecord {
  const key = ensureDkimKey({ dataDir: config.data_dir, selector: config.dkim.selector, algorithm: config.dkim.algorithm }, d);
  return { name: `${config.dkim.selector}._domainkey.${d}.`, type: 'TXT', value: dkimRecord(key), note: `DKIM: the public key mailnest signs ${d} mail with (selector ${config.dkim.selector})` };
}

export function formatRecords(records: DnsRecord[]): string {
  return records.map((r) => `; ${r.note}\n${r.name}\t3600\tIN\t${r.type}\t${r.type === 'TXT' ? txtStrings(r.value) : r.value}\n`).join('\n');
}
