/**
 * The JSON body of POST /api/v1/send, validated into composer input. Every problem is reported
 * with the field it concerns ("to[1]", "attachments[0].content").
 *
 *   { "from"?: "Name <a@b>", "to"?: string | string[], "cc"?: ..., "bcc"?: ...,
 *     "subject"?: string, "text"?: string, "html"?: string,
 *     "attachments"?: [{ "filename": string, "content": base64, "contentType"?: string, "cid"?: string }],
 *     "headers"?: { "Name": "value", ... } }
 */
import { z } from 'zod';
import type { ComposeAttachment, ComposeHeader } from '../mime/compose.ts';

const addresses = z.union([z.string(), z.array(z.string()).max(10_000)], {
  error: 'expected an address or an array of addresses (strings)',
});

const attachment = z.strictObject({
  filename: z.string({ error: 'expected a string (the file name)' }),
  content: z.string({ error: 'expected a string (the file content in base64)' }),
  contentType: z.string({ error: 'expected a string such as "application/pdf"' }).optional(),
  cid: z.string({ error: 'expected a string (the Content-ID the HTML refers to as cid:...)' }).optional(),
});

/** Header fields a request may add: far more than any message needs, and each costs the
 *  composer's work on the event loop, where a million would stall every listener for seconds. */
const MAX_HEADERS = 100;

/** Counted before any field is checked, so that the count is what bounds the work. */
const headers = z.custom<object>((v) => typeof v !== 'object' || v === null || Object.keys(v).length <= MAX_HEADERS, {
  error: `expected at most ${MAX_HEADERS} header fields`,
}).pipe(z.record(z.string(), z.string({ error: 'expected a string value' }), { error: 'expected an object of "Name": "value" pairs' }));

const schema = z.strictObject({
  from: z.string({ error: 'expected a string (one address)' }).optional(),
  to: addresses.optional(),
  cc: addresses.optional(),
  bcc: addresses.optional(),
  subject: z.string({ error: 'expected a string' }).optional(),
  text: z.string({ error: 'expected a string' }).optional(),
  html: z.string({ error: 'expected a string' }).optional(),
  attachments: z.array(attachment, { error: 'expected an array of {filename, content, contentType?, cid?}' }).max(1000).optional(),
  headers: headers.optional(),
}, { error: 'expected a JSON object' });

export interface SendRequest {
  from?: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject?: string;
  text?: string;
  html?: string;
  attachments: ComposeAttachment[];
  headers: ComposeHeader[];
}

export class RequestError extends Error {}

function fieldPath(path: PropertyKey[]): string {
  return path.map((k) => (typeof k === 'number' ? `[${k}]` : `.${String(k)}`)).join('').replace(/^\./, '');
}

/** Base64 (RFC 4648 §4) without line breaks: whole quanta, padding only at the end. (A single
 *  character class: a repeated group would make the regular expression engine recurse once
 *  per quantum and overflow the stack on a few MiB.) */
function isBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
}

/** Validates a parsed JSON value; throws RequestError with a message naming the field. */
export function parseSendRequest(body: unknown): SendRequest {
  const r = schema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const where = fieldPath(issue.path);
    if (issue.code === 'unrecognized_keys') {
      const allowed = issue.path.length === 0 ? Object.keys(schema.shape) : Object.keys(attachment.shape);
      throw new RequestError(`${where ? `${where}: ` : ''}unknown field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}; allowed: ${allowed.join(', ')}`);
    }
    if (issue.code === 'too_big') throw new RequestError(`${where}: too many entries`);
    throw new RequestError(where ? `${where}: ${issue.message}` : `request body: ${issue.message}`);
  }
  const v = r.data;
  const list = (x: string | string[] | undefined) => (x === undefined ? [] : Array.isArray(x) ? x : [x]);
  const attachments = (v.attachments ?? []).map((a, i): ComposeAttachment => {
    const b64 = a.content.replace(/[\r\n \t]/g, '');
    if (!isBase64(b64)) throw new RequestError(`attachments[${i}].content: not valid base64`);
    return {
      filename: a.filename,
      content: Buffer.from(b64, 'base64'),
      ...(a.contentType !== undefined ? { contentType: a.contentType } : {}),
      ...(a.cid !== undefined ? { cid: a.cid } : {}),
    };
  });
  return {
    ...(v.from !== undefined ? { from: v.from } : {}),
    to: list(v.to), cc: list(v.cc), bcc: list(v.bcc),
    ...(v.subject !== undefined ? { subject: v.subject } : {}),
    ...(v.text !== undefined ? { text: v.text } : {}),
    ...(v.html !== undefined ? { html: v.html } : {}),
    attachments,
    headers: Object.entries(v.headers ?? {}).map(([name, value]) => ({ name, value })),
  };
}
