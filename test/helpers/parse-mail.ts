/**
 * Reads a message back with a parser that is not ours: python3's `email` package (policy
 * default, RFC 2047/2231 decoding on). Returns the headers, the tree of parts and every leaf's
 * decoded content, so tests compare what a mail client would show with what was sent.
 */
import { spawnSync } from 'node:child_process';

export interface ParsedPart {
  contentType: string;
  /** Content-Transfer-Encoding as written, lower case; '' when absent. */
  cte: string;
  disposition: string | null;
  filename: string | null;
  contentId: string | null;
  charset: string | null;
  /** Decoded text for text/* leaves (CRLF turned into LF). */
  text?: string;
  /** Decoded bytes of every leaf, base64. */
  bytes?: string;
  parts?: ParsedPart[];
}

export interface ParsedMail {
  /** Decoded header values (RFC 2047 undone), first occurrence by lower-case name. */
  headers: Record<string, string>;
  /** Every header name in order, lower case. */
  headerNames: string[];
  /** The raw header values, unfolded but not decoded. */
  rawHeaders: Record<string, string>;
  root: ParsedPart;
  /** Longest line in octets, without CRLF. */
  longestLine: number;
  /** Python's header defects, if any. */
  defects: string[];
}

const SCRIPT = String.raw`
import sys, json, base64, email
from email import policy
raw = sys.stdin.buffer.read()
msg = email.message_from_bytes(raw, policy=policy.default)
def part(p):
    d = {
        'contentType': p.get_content_type(),
        'cte': str(p.get('Content-Transfer-Encoding', '')).strip().lower(),
        'disposition': p.get_content_disposition(),
        'filename': p.get_filename(),
        'contentId': str(p['Content-ID']) if p['Content-ID'] is not None else None,
        'charset': p.get_content_charset(),
    }
    if p.is_multipart():
        d['parts'] = [part(c) for c in p.iter_parts()]
    else:
        data = p.get_payload(decode=True) or b''
        d['bytes'] = base64.b64encode(data).decode('ascii')
        if p.get_content_maintype() == 'text':
            d['text'] = p.get_content().replace('\r\n', '\n')
    return d
headers, raw_headers, names = {}, {}, []
for k, v in msg.items():
    names.append(k.lower())
    headers.setdefault(k.lower(), str(v))
for k, v in msg.raw_items():
    raw_headers.setdefault(k.lower(), ' '.join(str(v).split()))
lines = raw.split(b'\r\n')
defects = [type(x).__name__ for x in msg.defects]
for p in msg.walk():
    defects += [type(x).__name__ for x in p.defects]
print(json.dumps({'headers': headers, 'headerNames': names, 'rawHeaders': raw_headers, 'root': part(msg),
                  'longestLine': max(len(l) for l in lines), 'defects': defects}))
`;

export function parseMail(message: Buffer): ParsedMail {
  const r = spawnSync('python3', ['-c', SCRIPT], { input: message, timeout: 60_000, maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`python3 could not parse the message: ${r.stderr?.toString()}`);
  return JSON.parse(r.stdout.toString('utf8')) as ParsedMail;
}

/** The leaves of a parsed message in order (depth first). */
export function leaves(p: ParsedPart): ParsedPart[] {
  return p.parts ? p.parts.flatMap(leaves) : [p];
}

/** A compact picture of the structure, e.g. "multipart/mixed(multipart/alternative(text/plain,text/html),application/pdf)". */
export function shape(p: ParsedPart): string {
  return p.parts ? `${p.contentType}(${p.parts.map(shape).join(',')})` : p.contentType;
}
