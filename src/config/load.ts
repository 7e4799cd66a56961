/** Finds, reads and validates the configuration file into one typed `Config`. */
import { isUtf8 } from 'node:buffer';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

/** A configuration problem, phrased for the operator: the key, the value and what is allowed. */
export class ConfigError extends Error {}

/** The config file named by `-c` (`explicit`), else by MAILNEST_CONFIG (set and not empty, as
 *  shells leave a variable meant to be unset), if any. */
export function namedConfig(explicit?: string): string | undefined {
  return explicit ?? (process.env.MAILNEST_CONFIG || undefined);
}

/** The file to read: the one named, else ./mailnest.toml when it exists. */
export function configPath(explicit?: string): string | undefined {
  return namedConfig(explicit) ?? (fs.existsSync('mailnest.toml') ? 'mailnest.toml' : undefined);
}

export function loadConfig(explicit?: string): Config {
  const file = configPath(explicit);
  let raw: unknown = {};
  if (file !== undefined) {
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'no such file (ENOENT); name an existing one, or write a starter one with `mailnest init`'
        : code === 'EACCES' ? 'permission denied (EACCES); run as a user that may read it'
        : code === 'EISDIR' ? 'it is a directory (EISDIR); name the file in it'
        : code ?? String(err);
      throw new ConfigError(`cannot read config file ${file}: ${why}`);
    }
    // TOML 1.0: "A TOML file must be a valid UTF-8 encoded Unicode document." Read any other
    // way, a Latin-1 "é" would become U+FFFD in a name, with no word of why.
    const bad = firstInvalidUtf8(bytes);
    if (bad !== undefined) {
      const line = bytes.subarray(0, bad).toString('latin1').split('\n').length;
      throw new ConfigError(`${file}: not UTF-8 at line ${line} (byte 0x${bytes[bad]!.toString(16).padStart(2, '0')}); a TOML file is UTF-8: save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)`);
    }
    const text = bytes.toString('utf8');
    try {
      raw = parseToml(text);
    } catch (err) {
      throw new ConfigError(`${file}: not valid TOML${tomlWhere(err, text)}: ${String((err as Error).message).split('\n')[0]!.replace(/^Invalid TOML document: /, '')}`);
    }
  }
  const config = parseConfig(raw, file ?? 'built-in defaults');
  // Paths in the file are relative to the file, wherever the command runs from.
  const base = file !== undefined ? path.dirname(file) : '.';
  config.data_dir = path.resolve(base, config.data_dir);
  if (config.tls.cert !== undefined) config.tls.cert = path.resolve(base, config.tls.cert);
  if (config.tls.key !== undefined) config.tls.key = path.resolve(base, config.tls.key);
  if (config.relay.ca_file !== undefined) config.relay.ca_file = path.resolve(base, config.relay.ca_file);
  return config;
}

/** A file the config names, read; an error names the key and the file. */
export function readConfiguredFile(key: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new ConfigError(`${key} = ${JSON.stringify(file)} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}); name a readable PEM file`);
  }
}

/** The "-----BEGIN CERTIFICATE-----" blocks of a PEM file, in their order. */
export function certificateBlocks(pem: Buffer): string[] {
  return pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

/**
 * A configured file of CA certificates, checked: Node's TLS quietly skips whatever in it is not a
 * PEM certificate, and a file of nothing else would be taken as trusting no one more, with no
 * word of why the certificates it was meant for are refused.
 */
export function readCertificates(key: string, file: string): Buffer {
  const pem = readConfiguredFile(key, file);
  const blocks = certificateBlocks(pem);
  const bad = (why: string) => new ConfigError(`${key} = ${JSON.stringify(file)} ${why}; name a file of PEM certificates ("-----BEGIN CERTIFICATE-----" blocks)`);
  if (blocks.length === 0) throw bad('holds no PEM certificate');
  for (const [i, block] of blocks.entries()) {
    try {
      new crypto.X509Certificate(block);
    } catch {
      throw bad(`has a certificate that cannot be read (number ${i + 1} of ${blocks.length})`);
    }
  }
  return pem;
}

/** The offset of the first byte that is no part of a UTF-8 character, if any: where the text
 *  read from them has a U+FFFD that the bytes do not spell. */
function firstInvalidUtf8(bytes: Buffer): number | undefined {
  if (isUtf8(bytes)) return undefined;
  const text = bytes.toString('utf8');
  for (let at = text.indexOf('\ufffd'); at >= 0; at = text.indexOf('\ufffd', at + 1)) {
    // Everything before it was read as written, so it is as long in octets as it was.
    const offset = Buffer.byteLength(text.slice(0, at));
    if (!bytes.subarray(offset, offset + 3).equals(REPLACEMENT_CHARACTER)) return offset;
  }
  return undefined;
}

const REPLACEMENT_CHARACTER = Buffer.from('\ufffd');

/** " at line N (`the line`)" for a parse error that knows its line; a line that may hold a
 *  secret (the smarthost's password) is not quoted: the error may be read by whoever runs a
 *  command (sendmail, from a web server's user) or the journal, not only the file's owner. */
function tomlWhere(err: unknown, text: string): string {
  const line = (err as { line?: unknown }).line;
  if (typeof line !== 'number' || line < 1) return '';
  const source = text.split(/\r?\n/)[line - 1]?.trim() ?? '';
  if (SECRET_LINE.test(source)) return ` at line ${line} (the password's line, not shown)`;
  return ` at line ${line}${source ? ` (\`${source.length > 60 ? `${source.slice(0, 60)}…` : source}\`)` : ''}`;
}

/** A line that sets a key named like a secret, or may (one whose key cannot be told). */
const SECRET_LINE = /password|passwd|secret/i;
/** Keys whose values are never repeated in an error. */
const SECRET_KEY = /(^|\.)password$/;

/** Validates an already-parsed object (used by tests to build configs in memory). */
export function parseConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new ConfigError(`${source}: ${describeIssue(result.error.issues[0]!, raw)}`);
}

function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  const key = keyName(issue.path);
  if (issue.code === 'unrecognized_keys') {
    const where = key ? `${key}.` : '';
    return `unknown key ${issue.keys.map((k) => where + k).join(', ')}; allowed here: ${allowedKeys(issue.path).join(', ')}`;
  }
  if (issue.code === 'invalid_key') {
    const inner = issue.issues[0];
    return `${keyName(issue.path.slice(0, -1))}: the key ${JSON.stringify(issue.path.at(-1))} is not allowed: expected ${inner ? expectation(inner) : 'another key'}`;
  }
  const value = valueAt(raw, issue.path);
  if (issue.code === 'custom' && issue.path.length > 0 && typeof value === 'object' && !(value instanceof Date)) return `${key}: ${issue.message}`;
  // A rule broken by a default the file did not set (a listener's address): said as such.
  if (issue.code === 'custom' && value === undefined) return `${key}, by default: ${issue.message}`;
  if (SECRET_KEY.test(key)) return `${key} (its value not shown) is not allowed: expected ${expectation(issue, key, value)}`;
  return `${key} = ${shown(value)} is not allowed: expected ${expectation(issue, key, value)}`;
}

/** A key's path as the file writes it: `relay.routes`, `listen.smtp[0]`, and a key that is not
 *  a bare key in quotes (TOML 1.0 "Keys"): `relay.routes."example.org"`. */
function keyName(keyPath: PropertyKey[]): string {
  const part = (k: PropertyKey) => (typeof k === 'number' ? `[${k}]` : /^[A-Za-z0-9_-]+$/.test(String(k)) ? `.${String(k)}` : `.${JSON.stringify(String(k))}`);
  return keyPath.map(part).join('').replace(/^\./, '');
}

/** A value as the file wrote it, near enough: TOML has inf and nan, and dates, which JSON has not. */
function shown(value: unknown): string {
  if (value === undefined) return '(missing)';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value).replace('Infinity', 'inf').replace('NaN', 'nan');
  if (value instanceof Date) return `${value.toISOString()} (a date)`;
  return JSON.stringify(value);
}

/** What the key takes, in TOML's words; `key` (its whole name) and `value` (what it holds now)
 *  shape the example. */
function expectation(issue: z.core.$ZodIssue, key = '', value?: unknown): string {
  switch (issue.code) {
    // A schema's own words for what it takes ("a duration such as ..."), else the type's name.
    case 'invalid_type':
      if (!issue.message.startsWith('Invalid input')) return issue.message;
      if (issue.expected === 'int') return 'a whole number';
      // The example holds the value given when it is a string (the usual slip: `domains =
      // "example.com"`); a number or the like would only be refused again inside the brackets.
      if (issue.expected === 'array') return `a list in brackets, such as ${keyName(issue.path.slice(-1)) || 'key'} = [${typeof value === 'string' ? shown(value) : '"..."'}]`;
      // A table (TOML 1.0 "Table"): its own section, with its keys on the lines under it.
      if (issue.expected === 'object') return `a table: a [${key}] section with its keys on the lines under it`;
      if (issue.expected === 'record') return `a table: a [${key}] section of "name" = value lines`;
      return `${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`;
    case 'invalid_value': return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      if (issue.origin === 'array') return `at least ${issue.minimum} entr${issue.minimum === 1 ? 'y' : 'ies'}`;
      if (issue.origin === 'string') return Number(issue.minimum) === 1 ? 'a value that is not empty' : `at least ${issue.minimum} characters`;
      return `${issue.inclusive === false ? 'more than' : 'at least'} ${issue.minimum}`;
    case 'too_big': return `at most ${issue.maximum}`;
    default: return issue.message;
  }
}

function valueAt(raw: unknown, keyPath: PropertyKey[]): unknown {
  let v: unknown = raw;
  for (const k of keyPath) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[k];
  }
  return v;
}

function allowedKeys(keyPath: PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const k of keyPath) {
    schema = unwrap(schema);
    if (!(schema instanceof z.ZodObject)) return [];
    schema = (schema.shape as Record<string, z.ZodType>)[String(k)]!;
  }
  schema = unwrap(schema);
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  for (;;) {
    const def = (s as unknown as { def: { innerType?: z.ZodType; in?: z.ZodType } }).def;
    if (def.innerType) s = def.innerType;
    else if (def.in) s = def.in;
    else return s;
  }
}
