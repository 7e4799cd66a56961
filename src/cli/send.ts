/**
 * `mailnest send`: composes a MIME message from options and files and commits it to the store
 * (local mailboxes and the outbound queue) through the same path as SMTP. Prints the queue id.
 * Needs no running server: a running one picks the queued mail up, a stopped one on start.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { hasControlCharacters } from '../ascii.ts';
import type { Context } from '../context.ts';
import { submitLocal, SubmitError } from '../delivery/submit.ts';
import type { ComposeAttachment } from '../mime/compose.ts';
import { ComposeError } from '../mime/errors.ts';
import { readsAsUtf8 } from '../mime/text-charset.ts';
import { configOf, withContext } from './common.ts';
import { CliError, UsageError } from './errors.ts';
import { readLimited, TooLarge } from './read-limited.ts';

interface SendOptions {
  from?: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject?: string;
  text?: string;
  textFile?: string;
  html?: string;
  htmlFile?: string;
  attach: string[];
  inline: string[];
  header: string[];
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The option a composer field came from, for error messages: an attachment's with its file. */
function optionFor(field: string, opts: SendOptions): string {
  const m = /^(\w+)(?:\[(\d+)\])?/.exec(field);
  const name = m?.[1] ?? field;
  if (name === 'headers') return '--header';
  if (name === 'attachments') {
    // The composer's attachments are the --attach files, then the --inline ones.
    const i = Number(m?.[2] ?? 0);
    return i < opts.attach.length ? `--attach ${shownPath(opts.attach[i]!)}` : `--inline ${shownPath(opts.inline[i - opts.attach.length]!)}`;
  }
  if (name === 'message') return 'message';
  return `--${name}`;
}

export function registerSend(program: Command): void {
  program.command('send')
    .description('compose a MIME message and queue it (prints the queue id); works with the server stopped')
    .option('--from <address>', 'sender, optionally with a name: "Backup <backup@example.com>" (default: postmaster@<first domain>)')
    .option('--to <address>', 'recipient (repeatable; a comma-separated list also works)', collect, [])
    .option('--cc <address>', 'copy recipient (repeatable)', collect, [])
    .option('--bcc <address>', 'blind copy recipient, never shown in the message (repeatable)', collect, [])
    .option('--subject <text>', 'subject (non-ASCII is encoded per RFC 2047)')
    .option('--text <text>', 'plain-text body')
    .option('--text-file <file>', 'plain-text body from a file ("-" for stdin)')
    .option('--html <html>', 'HTML body')
    .option('--html-file <file>', 'HTML body from a file ("-" for stdin)')
    .option('--attach <file>', 'attach a file; the content type comes from its name; FILE=NAME names it (--attach <(pg_dump db)=db.sql) (repeatable)', collect, [])
    .option('--inline <file>', 'embed an image the HTML shows as <img src="cid:NAME">, NAME its file name, or the one given as FILE=NAME (repeatable)', collect, [])
    .option('--header <"Name: value">', 'extra header (repeatable)', collect, [])
    .addHelpText('after', '\nWith neither --text nor --text-file, the text body is read from stdin unless --html or --html-file is given.')
    .action(async (opts: SendOptions, cmd: Command) => {
      // Read first: the files are the caller's, and the command may go on as data_dir's owner.
      const content = await readContent(opts, configOf(cmd).limits.max_message_size);
      await withContext(cmd, async (ctx) => {
        process.stdout.write(`${await send(ctx, opts, content)}\n`);
      });
    });
}

/** What the message is made of, from the options, files and stdin. */
interface Content {
  text?: string;
  html?: string;
  attachments: ComposeAttachment[];
}

async function readContent(opts: SendOptions, max: number): Promise<Content> {
  if (opts.text !== undefined && opts.textFile !== undefined) throw new UsageError('--text and --text-file cannot be used together');
  if (opts.html !== undefined && opts.htmlFile !== undefined) throw new UsageError('--html and --html-file cannot be used together');
  const files = {
    attach: opts.attach.map((arg) => ({ arg, ...namedFile(arg, '--attach') })),
    inline: opts.inline.map((arg) => ({ arg, ...namedFile(arg, '--inline') })),
  };
  // stdin can be read once: by the text, the HTML, or one file.
  const textFromStdin = opts.textFile === '-' || (opts.text === undefined && opts.textFile === undefined && opts.html === undefined && opts.htmlFile === undefined);
  const readers = [
    ...(textFromStdin ? [opts.textFile === '-' ? '--text-file -' : 'the text (no --text, --text-file, --html or --html-file)'] : []),
    ...(opts.htmlFile === '-' ? ['--html-file -'] : []),
    ...files.attach.filter((f) => f.file === '-').map((f) => `--attach ${f.arg}`),
    ...files.inline.filter((f) => f.file === '-').map((f) => `--inline ${f.arg}`),
  ];
  if (readers.length > 1) throw new UsageError(`only one of ${readers.join(', ')} can read stdin`);
  if (opts.to.length + opts.cc.length + opts.bcc.length === 0) throw new UsageError('at least one recipient is needed: --to, --cc or --bcc');
  // Every file and stdin together within limits.max_message_size: each read gets what is left.
  const budget = { max, left: max };
  let text = opts.text ?? (opts.textFile !== undefined ? await readBodyFile(opts.textFile, '--text-file', budget) : undefined);
  const html = opts.html ?? (opts.htmlFile !== undefined ? await readBodyFile(opts.htmlFile, '--html-file', budget) : undefined);
  if (text === undefined && html === undefined) {
    if (process.stdin.isTTY) process.stderr.write('mailnest: reading the message text from stdin; end it with Ctrl-D\n');
    text = await readBodyFile('-', 'stdin', budget);
  }
  const attachments: ComposeAttachment[] = [];
  for (const { file, name } of files.attach) attachments.push({ filename: name, content: await readFile(file, '--attach', budget) });
  for (const { file, name } of files.inline) attachments.push({ filename: name, content: await readFile(file, '--inline', budget), cid: name });
  return { ...(text !== undefined ? { text } : {}), ...(html !== undefined ? { html } : {}), attachments };
}

async function send(ctx: Context, opts: SendOptions, { text, html, attachments }: Content): Promise<string> {
  const { composeMessage, parseHeaderArg } = await import('../mime/compose.ts');
  let composed;
  try {
    composed = await composeMessage({
      from: opts.from ?? `postmaster@${ctx.config.domains[0]}`,
      to: opts.to, cc: opts.cc, bcc: opts.bcc,
      ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
      ...(text !== undefined ? { text } : {}),
      ...(html !== undefined ? { html } : {}),
      attachments,
      headers: opts.header.map((h) => parseHeaderArg(h, 'headers')),
      hostname: ctx.config.hostname,
    });
  } catch (err) {
    if (err instanceof ComposeError) {
      const detail = err.message.slice(err.field.length + 2);
      throw new UsageError(`${optionFor(err.field, opts)}: ${err.instead ? detail.replace(`"${err.instead}"`, optionFor(err.instead, opts)) : detail}`);
    }
    throw err;
  }
  try {
    return await submitLocal(ctx, { sender: composed.sender, recipients: composed.recipients, message: composed.message, protocol: 'local' });
  } catch (err) {
    if (err instanceof SubmitError) throw err.problem === 'bad_address' ? new UsageError(err.message) : new CliError(err.message);
    throw err;
  }
}

async function readBodyFile(file: string, option: string, budget: Budget): Promise<string> {
  return asText(await readFile(file, option, budget));
}

/** UTF-8 (a character cut at either end aside: see readsAsUtf8), or else Latin-1, which maps
 *  every byte to a character: what a script in a legacy locale printed arrives whole instead of
 *  with U+FFFD where its bytes were. */
function asText(bytes: Buffer): string {
  return bytes.toString(readsAsUtf8(bytes) ? 'utf8' : 'latin1');
}

/** What limits.max_message_size leaves for the files still to be read. */
interface Budget {
  max: number;
  left: number;
}

/**
 * The file an --attach or --inline names, and the name the part is given: FILE=NAME names it (a
 * pipe, `<(pg_dump db)=db.sql`, is otherwise called "63"), FILE being the first part before an
 * "=" that names something (or "-", stdin), so that NAME may hold "=" too, unless the whole
 * names something itself; else the file's own name. (A directory is named so that reading it
 * says what it is.)
 */
function namedFile(arg: string, option: string): { file: string; name: string } {
  const kind = (p: string): 'none' | 'directory' | 'other' => {
    if (p === '-') return 'other';
    try {
      const stat = fs.statSync(p, { throwIfNoEntry: false });
      return stat === undefined ? 'none' : stat.isDirectory() ? 'directory' : 'other';
    } catch {
      return 'none'; // ENAMETOOLONG, ENOTDIR ...: reading it says which
    }
  };
  if (kind(arg) === 'none') {
    for (let eq = arg.indexOf('='); eq > 0; eq = arg.indexOf('=', eq + 1)) {
      const name = arg.slice(eq + 1);
      const before = kind(arg.slice(0, eq));
      // After a directory, a "/" says the "=" is the path's own (data=2024/report.csv).
      if (before === 'none' || (before === 'directory' && name.includes('/'))) continue;
      if (name === '') throw new UsageError(`${option} ${shownPath(arg)}: the name after "=" is empty`);
      // Node reads its arguments as UTF-8, with U+FFFD for bytes that are none.
      if (name.includes('\ufffd')) throw new UsageError(`${option} ${shownPath(arg)}: the name after "=" is not UTF-8; give it in UTF-8`);
      return { file: arg.slice(0, eq), name };
    }
  }
  return { file: arg, name: path.basename(arg) };
}

/** A path in an error: quoted when it holds a line end or other control character, so that
 *  the error stays one line. */
function shownPath(file: string): string {
  return hasControlCharacters(file) ? JSON.stringify(file) : file;
}

/**
 * A file's bytes (`-`: stdin's), read no further than the budget leaves: a pipe
 * (`--attach <(mysqldump ...)`) or a device has no size to check first, and one that never ends
 * (/dev/zero) is stopped at the bound too.
 */
async function readFile(file: string, option: string, budget: Budget): Promise<Buffer> {
  const name = file === '-' ? '' : ` ${shownPath(file)}`;
  const over = new CliError(`${option}${name}: over limits.max_message_size (${budget.max} bytes for the whole message)`);
  try {
    if (file !== '-' && (await fs.promises.stat(file)).size > budget.left) throw over;
    const bytes = await readLimited(budget.left, false, file === '-' ? process.stdin : fs.createReadStream(file));
    budget.left -= bytes.length;
    return bytes;
  } catch (err) {
    if (err instanceof CliError) throw err;
    if (err instanceof TooLarge) throw over;
    const code = (err as NodeJS.ErrnoException).code;
    // A name whose bytes are not UTF-8 reaches the command with U+FFFD in their place (Node
    // reads its arguments as UTF-8), and names no file.
    const pipe = option === '--attach' || option === '--inline' ? `${option} <(cat FILE)=NAME` : `${option} <(cat FILE)`;
    const why = code === 'ENOENT' && file.includes('\ufffd') ? `no such file: its name is not UTF-8, and the command cannot name it; rename the file, or pass it through a pipe: ${pipe}`
      : code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory'
      : code === 'ENOTDIR' ? 'no such file (a part of its path before the last "/" is a file, not a directory)'
      : code === 'ENAMETOOLONG' ? 'no such file (its name, or a part of its path, is too long)' : String(code ?? err);
    throw new CliError(`${option}${name}: ${why}`);
  }
}
