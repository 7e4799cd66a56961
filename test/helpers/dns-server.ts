/**
 * A small authoritative DNS server on 127.0.0.1 (UDP, RFC 1035 §4) answering A, MX and TXT
 * from a table, NXDOMAIN for unknown names: lets a real mailnest process resolve names in
 * tests without any query leaving the machine (config key `dns_servers`).
 */
import dgram from 'node:dgram';

export interface Zone {
  A?: Record<string, string[]>;
  MX?: Record<string, { exchange: string; priority: number }[]>;
  TXT?: Record<string, string[]>;
  /** Names under which the server never answers, as a sender's own slow DNS may not. */
  silent?: string[];
  /** Names answered SERVFAIL, as a broken authoritative server's are. */
  failing?: string[];
  /** Names whose first query is answered only after this many milliseconds, as a recursive
   *  resolver's cold lookup is; later ones at once, from its cache. */
  slow?: Record<string, number>;
}

const TYPES: Record<number, keyof Zone> = { 1: 'A', 15: 'MX', 16: 'TXT' };

export interface DnsServer {
  address: string;
  queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(zone: Zone): Promise<DnsServer> {
  const socket = dgram.createSocket('udp4');
  const queries: string[] = [];
  const cold = new Set(Object.keys(zone.slow ?? {}));
  let open = true;
  socket.on('message', (msg, rinfo) => {
    try {
      const reply = answer(msg, zone, queries);
      const { name } = readName(msg, 12);
      const delay = cold.delete(name) ? zone.slow![name]! : 0;
      if (reply) setTimeout(() => { if (open) socket.send(reply, rinfo.port, rinfo.address); }, delay);
    } catch { /* malformed query: no answer */ }
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    queries,
    close: () => new Promise((r) => {
      open = false;
      socket.close(() => r());
    }),
  };
}

function readName(msg: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let i = offset;
  while (msg[i]! > 0) {
    labels.push(msg.subarray(i + 1, i + 1 + msg[i]!).toString('latin1'));
    i += msg[i]! + 1;
  }
  return { name: labels.join('.').toLowerCase(), next: i + 1 };
}

function encodeName(name: string): Buffer {
  const parts = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]));
  return Buffer.concat([...parts, Buffer.from([0])]);
}

function answer(msg: Buffer, zone: Zone, log: string[]): Buffer | undefined {
  if (msg.length < 12) return undefined;
  const { name, next } = readName(msg, 12);
  const qtype = msg.readUInt16BE(next);
  const question = msg.subarray(12, next + 4);
  const type = TYPES[qtype];
  log.push(`${type ?? qtype} ${name}`);
  if (zone.silent?.some((s) => name === s || name.endsWith(`.${s}`))) return undefined;
  const failing = zone.failing?.includes(name) ?? false;
  const known = [zone.A, zone.MX, zone.TXT].some((table) => table && name in table);
  const records: Buffer[] = [];
  if (type === 'A') {
    for (const ip of zone.A?.[name] ?? []) records.push(Buffer.from(ip.split('.').map(Number)));
  } else if (type === 'MX') {
    for (const mx of zone.MX?.[name] ?? []) {
      const pref = Buffer.alloc(2);
      pref.writeUInt16BE(mx.priority);
      records.push(Buffer.concat([pref, encodeName(mx.exchange)]));
    }
  } else if (type === 'TXT') {
    for (const text of zone.TXT?.[name] ?? []) {
      // A TXT record is a sequence of strings of at most 255 octets each.
      const chunks: Buffer[] = [];
      const bytes = Buffer.from(text, 'utf8');
      for (let i = 0; i < bytes.length || i === 0; i += 255) {
        const piece = bytes.subarray(i, i + 255);
        chunks.push(Buffer.from([piece.length]), piece);
      }
      records.push(Buffer.concat(chunks));
    }
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0); // id
  // QR, AA, RD copied; SERVFAIL (2) or NXDOMAIN (3) when so.
  header.writeUInt16BE(0x8400 | (msg.readUInt16BE(2) & 0x0100) | (failing ? 2 : known ? 0 : 3), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(records.length, 6);
  const rrs = records.map((rdata) => {
    const fixed = Buffer.alloc(10);
    fixed.writeUInt16BE(qtype, 0);
    fixed.writeUInt16BE(1, 2);
    fixed.writeUInt32BE(60, 4);
    fixed.writeUInt16BE(rdata.length, 8);
    return Buffer.concat([Buffer.from([0xc0, 0x0c]), fixed, rdata]);
  });
  return Buffer.concat([header, question, ...rrs]);
}
