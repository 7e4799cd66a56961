/**
 * The key a client address is counted under for the limits per client (connections, failed
 * logins, memory of messages arriving): an IPv4 address as it is (also when it comes mapped into
 * IPv6, `::ffff:1.2.3.4`, from a listener on `[::]`), an IPv6 address by its /64 network. One
 * IPv6 host is given a /64 at least, and could otherwise come from as many addresses as it
 * liked, each a client with limits of its own. (Postfix 3.8 counts IPv6 clients by a prefix too,
 * smtpd_client_ipv6_prefix_length.)
 */
import net from 'node:net';

export function clientKey(ip: string): string {
  const address = ip.replace(/%.*$/, '');
  if (!net.isIPv6(address)) return ip;
  const groups = ipv6Groups(address);
  // ::ffff:0:0/96, an IPv4 address mapped into IPv6.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  }
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** A client's address as logs and trace fields give it: one mapped into IPv6 (a listener on
 *  `[::]`) as the IPv4 address it is, any other as it came. */
export function clientAddress(ip: string): string {
  const key = clientKey(ip);
  return key.endsWith('::/64') ? ip : key;
}

/** The eight 16-bit groups of a valid IPv6 address (without zone), `::` and a dotted IPv4 tail
 *  (two groups) expanded. */
export function ipv6Groups(address: string): number[] {
  const part = (text: string): number[] => {
    if (text === '') return [];
    return text.split(':').flatMap((g) => {
      if (!g.includes('.')) return [parseInt(g, 16)];
      const [a, b, c, d] = g.split('.').map(Number) as [number, number, number, number];
      return [(a << 8) | b, (c << 8) | d];
    });
  };
  const [head = '', tail] = address.split('::');
  const left = part(head);
  if (tail === undefined) return left;
  const right = part(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}
