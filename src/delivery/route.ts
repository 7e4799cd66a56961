/**
 * Which next hop a recipient domain goes to: a per-domain route first, else the smarthost when
 * one is configured, else the domain's own MX hosts (looked up at delivery time, see mx.ts).
 * Recipients that share a next hop share a destination: one queue, one set of connections,
 * one concurrency limit, one SMTP transaction per message.
 */
import { canonicalDomain, splitHostPort, type Config } from '../config/schema.ts';
import { domainKey } from '../store/store.ts';

export type NextHop =
  | { kind: 'route'; key: string; host: string; port: number }
  | { kind: 'smarthost'; key: string; host: string; port: number; tls: 'implicit' | 'starttls' | 'none'; auth?: { user: string; pass: string } }
  | { kind: 'mx'; key: string; domain: string };

/** The domain of an address as routes and MX lookups take it: lower case, A-labels, no final dot. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return domainKey(canonicalDomain(at < 0 ? '' : address.slice(at + 1)));
}

export class Router {
  private readonly routes: Map<string, string>;
  private readonly relay: Config['relay'];

  constructor(relay: Config['relay']) {
    this.relay = relay;
    this.routes = new Map(Object.entries(relay.routes).map(([d, hp]) => [domainKey(canonicalDomain(d)), hp]));
  }

  /** The next hop for mail to `address`. */
  route(address: string): NextHop {
    const domain = domainOf(address);
    const route = this.routes.get(domain);
    if (route !== undefined) {
      const { host, port } = splitHostPort(route);
      return { kind: 'route', key: `route:${host}:${port}`, host, port };
    }
    if (this.relay.smarthost) {
      const { host, port } = splitHostPort(this.relay.smarthost);
      const auth = this.relay.username !== undefined ? { user: this.relay.username, pass: this.relay.password ?? '' } : undefined;
      return { kind: 'smarthost', key: `smarthost:${host}:${port}`, host, port, tls: this.relay.smarthost_tls, ...(auth ? { auth } : {}) };
    }
    return { kind: 'mx', key: `mx:${domain}`, domain };
  }
}
