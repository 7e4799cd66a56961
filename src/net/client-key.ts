/**
 * The key a client address is counted under for the limits per client (connections, failed
 * logins, memory of messages arriving): an IPv4 address as it is, an IPv6 address by its /64
 * network. One IPv6 host is given a /64 at least, and could otherwise come from as many
 * addresses as it liked, each a client with limits of its own. (Postfix 3.8 counts IPv6 clients
 * by a prefix too, smtpd_client_ipv6_prefix_length.)
 */
import net from 'node:net';

export function clientKey(ip: string): string {
  if (!net.isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  // An embedded IPv4 address (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) lies past the first 64 bits.
  const groups = ip.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}
