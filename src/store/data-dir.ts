/**
 * data_dir holds password hashes, mail and private keys: it is made, or kept, out of reach of
 * other users (0700 when made). A directory made in advance with the usual 0755
 * (`/var/lib/mailnest`) would otherwise let every local user read the database: one of this
 * user's that holds nothing but mailnest's own files loses the permissions it gives others
 * (0755 becomes 0700; 0750, given on purpose to a group, stays). Any other (data_dir = "." in a
 * home directory, a shared one such as /tmp) is left as it is, and the server warns at start.
 * Errors name the key and what to do, where the system's would name only a path.
 */
import fs from 'node:fs';
import path from 'node:path';

export function prepareDataDir(dir: string): void {
  makeDir(dir);
  const stat = fs.statSync(dir);
  if (!stat.isDirectory()) throw notADirectory(dir);
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EROFS') throw readOnly(dir);
    throw Object.assign(new Error(`data_dir ${dir} is not writable by this user; run mailnest as the user that owns data_dir`), { code: 'EACCES' });
  }
  if ((stat.mode & 0o007) !== 0 && (stat.mode & 0o1000) === 0 && stat.uid === process.getuid?.() && isMailnests(dir)) {
    fs.chmodSync(dir, stat.mode & 0o700);
  }
}

/**
 * Makes `dir` and the directories above it that are missing, one by one from the nearest that
 * exists: each failure is then the system's answer for one directory (mkdir's own recursion
 * loops for ever under /proc), and a symbolic link to nothing (an unmounted volume) is told
 * apart from a file.
 */
function makeDir(dir: string): void {
  const missing: string[] = [];
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    let code: string | undefined;
    try {
      fs.statSync(at);
      break;
    } catch (err) {
      code = (err as NodeJS.ErrnoException).code;
    }
    if (code === 'ENOTDIR') throw notADirectory(dir, fileOnTheWay(at));
    if (code !== 'ENOENT') throw cannotMake(dir, code ?? 'unknown');
    const link = readLink(at);
    if (link !== undefined) throw new Error(`data_dir ${dir}: ${at} is a symbolic link to ${link}, which does not exist (a volume not mounted?); mount it, or point data_dir elsewhere`);
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
      if (code === 'EEXIST') continue; // made meanwhile, by another mailnest command
      if (code === 'EROFS') throw readOnly(dir);
      throw cannotMake(dir, code);
    }
  }
}

function readLink(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** The file that stands where `at` or a directory above it should be. */
function fileOnTheWay(at: string): string {
  for (let p = path.dirname(at); path.dirname(p) !== p; p = path.dirname(p)) {
    if (fs.statSync(p, { throwIfNoEntry: false })?.isDirectory() === false) return p;
  }
  return at;
}

/** `file`: what stands in the way, when not data_dir itself. */
function notADirectory(dir: string, file?: string): Error {
  const where = file === undefined || path.resolve(file) === path.resolve(dir) ? 'is not a directory' : `cannot be made: ${file} is a file, not a directory`;
  return new Error(`data_dir ${dir} ${where}; point data_dir at a directory (it is made when missing)`);
}

/** data_dir on a file system mounted read-only, as the kernel remounts one after a disk error. */
export function readOnly(dir: string): Error {
  return Object.assign(new Error(`data_dir ${dir} is on a file system mounted read-only (the kernel does that after a disk error: see dmesg); remount it read-write once the disk is sound, or point data_dir elsewhere`), { code: 'EROFS' });
}

function cannotMake(dir: string, code: string): Error {
  return Object.assign(new Error(`data_dir ${dir} cannot be made (${code}); make it, owned by the user mailnest runs as, or point data_dir elsewhere`), { code });
}

/** What mailnest keeps in data_dir (see CONFIGURATION.md). */
const OWN = /^(mailnest\.sqlite(-wal|-shm|-journal)?|server\.(lock|lock-journal|pid)|body-log|bodies|tls|dkim)$/;

/** Holding nothing but mailnest's own files (or nothing): a directory for mailnest alone. */
function isMailnests(dir: string): boolean {
  return fs.readdirSync(dir).every((name) => OWN.test(name));
}

/** Files of this user's that mailnest keeps (the database, made by an earlier version or under
 *  another umask) lose the permissions they give others. */
export function keepPrivate(files: string[]): void {
  for (const file of files) {
    try {
      const stat = fs.statSync(file);
      if ((stat.mode & 0o077) !== 0 && stat.uid === process.getuid?.()) fs.chmodSync(file, stat.mode & 0o600);
    } catch {
      // not there (yet)
    }
  }
}

/** A file's text, or '' when there is no such file. */
export function readIfThere(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}
