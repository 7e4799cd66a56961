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
};

/** The content type for a file name, judged by its extension only (never by the bytes). */
export function contentTypeFor(filename: string): string {
  const ext = path.extname(filename).slice(1).toLowerCase();
  if (ext === '') return OCTET_STREAM;
  return KNOWN[ext] ?? detectMimeType(ext) ?? OCTET_STREAM;
}

/** A bare `type/subtype` (RFC 2045 §5.1 tokens), for content types a caller supplies. */
export function isContentType(value: string): boolean {
  return /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,127}$/.test(value);
}
