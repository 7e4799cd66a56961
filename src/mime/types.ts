/**
 * Content types from file names, for attachments. The types the operator docs promise are
 * listed here explicitly (so a change in the library table cannot move them); every other
 * extension is looked up in nodemailer's table, and application/octet-stream is the answer
 * when neither knows it.
 */
import path from 'node:path';
import { detectMimeType } from 'nodemailer/lib/mime-funcs/mime-types';

export const OCTET_STREAM = 'application/octet-stream';

const KNOWN: Record<string, string> = {
  html: 'text/html',
  htm: 'text/html',
  txt: 'text/plain',
  text: 'text/plain',
  log: 'text/plain',
  csv: 'text/csv',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  png: 'image/png',
  svg: 'image/svg+xml',
  webp: 'image/webp',
  pdf: 'application/pdf',
  zip: 'application/zip',
  gz: 'application/gzip',
  // IANA registered application/vnd.rar in 2017; x-rar-compressed was the older private name.
  rar: 'application/vnd.rar',
  mp4: 'video/mp4',
  json: 'application/json',
  // Where the library's table is wrong or missing: a misspelt type for .py, a shell archive
  // for .sh, nothing for .md (RFC 7763), the old private names for .tgz and .vcf (RFC 6350).
  py: 'text/x-python',
  sh: 'application/x-sh',
  md: 'text/markdown',
  tgz: 'application/gzip',
  vcf: 'text/vcard',
  eml: 'message/rfc822',
  ics: 'text/calendar',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  // The library has RealAudio's plug-in type for .rpm.
  rpm: 'application/x-rpm',
  // A JPEG by another name (the library has a misspelt private type); and the phone camera's and
  // audio formats it does not know, so that mail clients can show or play them.
  jfif: 'image/jpeg',
  heic: 'image/heic',
  heif: 'image/heif',
  avif: 'image/avif',
  m4a: 'audio/mp4',
  ogg: 'audio/ogg',
  opus: 'audio/ogg',
  flac: 'audio/flac',
};

/** The content type for a file name, judged by its extension only (never by the bytes). */
export function contentTypeFor(filename: string): string {
  const ext = path.extname(filename).slice(1).toLowerCase();
  if (ext === '') return OCTET_STREAM;
  return KNOWN[ext] ?? detectMimeType(ext) ?? OCTET_STREAM;
}

/** RFC 6838 §4.2 names for type and subtype; RFC 2045 §5.1 tokens (printable ASCII but
 *  ()<>@,;:\\"/[]?= and space) and quoted strings (printable ASCII) for parameters. */
const TYPE = /^([A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,127})[ \t]*/;
const TOKEN = /^[!#-'*+\-.0-9A-Z^-~]+$/;
const PARAMETER = /^;[ \t]*([!#-'*+\-.0-9A-Z^-~]+)=([!#-'*+\-.0-9A-Z^-~]+|"(?:[\t !#-[\]-~]|\\[\t -~])*")[ \t]*/;

/** A parameter's value as it is written: a token, else a quoted string (RFC 2045 §5.1). */
export function parameterValue(value: string): string {
  return TOKEN.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * A content type a caller supplies: `type/subtype` with parameters, as `text/plain;
 * charset=iso-8859-1`; undefined when it is not one, or names a parameter twice. `name` is not
 * taken: it is the file name's, which mailnest writes. Nor are RFC 2231's forms (`title*`,
 * `title*0`...): their values would be written again as text, and read back wrong.
 */
export function parseContentType(value: string): { type: string; params: Record<string, string> } | undefined {
  const type = TYPE.exec(value);
  if (!type) return undefined;
  const params: Record<string, string> = Object.create(null);
  let rest = value.slice(type[0].length);
  for (let p = PARAMETER.exec(rest); p; p = PARAMETER.exec(rest)) {
    const name = p[1]!.toLowerCase();
    if (name in params || name === 'name' || name.includes('*')) return undefined;
    params[name] = p[2]!.startsWith('"') ? p[2]!.slice(1, -1).replace(/\\(.)/g, '$1') : p[2]!;
    rest = rest.slice(p[0].length);
  }
  if (rest.replace(/^;[ \t]*/, '') !== '') return undefined;
  return { type: type[1]!, params };
}
