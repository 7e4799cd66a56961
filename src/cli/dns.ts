/** `mailnest dns [DOMAIN]`: the MX, SPF, DKIM and DMARC records to publish (makes the DKIM key if needed). */
import type { Command } from 'commander';
import { dnsRecords, domainIsAddressWarning, endsInNumber, formatRecords, isFullyQualified } from '../delivery/dns-records.ts';
import { domainKey } from '../store/store.ts';
import { asDataDirOwner, configOf } from './common.ts';
import { UsageError } from './errors.ts';

export function registerDns(program: Command): void {
  program.command('dns [domain]').description('print the MX, SPF, DKIM and DMARC records to publish for a domain')
    .option('--json', 'print a JSON array of {name, type, value}')
    .action(async (domain: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const config = configOf(cmd);
      // The DKIM key may be made here, in data_dir.
      asDataDirOwner(config.data_dir);
      const d = domainKey((domain ?? config.domains[0]!).replace(/\.$/, ''));
      if (!config.domains.some((x) => domainKey(x) === d)) {
        // The same as user add and alias add say of such a domain.
        throw new UsageError(`${JSON.stringify(d)} is not one of the configured domains (${config.domains.join(', ')}); add it to "domains" in the config`);
      }
      // The MX names this host: a name other servers cannot look up is no use there.
      if (!isFullyQualified(config.hostname)) {
        const suggested = isFullyQualified(d) ? d : 'example.com';
        process.stderr.write(`mailnest: warning: hostname ${JSON.stringify(config.hostname)} is not a fully qualified name, so the MX record below names a host no other server can find; set hostname = "mail.${suggested}" (a name with an A/AAAA record for this machine) in the config\n`);
      }
      if (endsInNumber(d)) process.stderr.write(`mailnest: warning: ${domainIsAddressWarning(d)}\n`);
      const records = dnsRecords(config, d);
      if (opts.json) process.stdout.write(`${JSON.stringify(records.map(({ name, type, value }) => ({ name, type, value })))}\n`);
      else process.stdout.write(formatRecords(records));
    });
}
