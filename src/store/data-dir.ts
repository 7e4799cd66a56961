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

export function prepareDataDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') throw new Error(`data_dir ${dir} is not a directory; point data_dir at a directory (it is made when missing)`);
    if (code === 'EACCES' || code === 'EROFS') throw Object.assign(new Error(`data_dir ${dir} cannot be made (${code}); make it, owned by the user mailnest runs as, or point data_dir elsewhere`), { code });
    throw err;
  }
  const stat = fs.statSync(dir);
  if (!stat.isDirectory()) throw new Error(`data_dir ${dir} is not a directory; point data_dir at a directory (it is made when missing)`);
  try {
    fs.accessSync(dir, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    throw Object.assign(new Error(`data_dir ${dir} is not writable by this user; run mailnest as the user that owns data_dir`), { code: 'EACCES' });
  }
  if ((stat.mode & 0o007) !== 0 && (stat.mode & 0o1000) === 0 && stat.uid === process.getuid?.() && isMailnests(dir)) {
    fs.chmodSync(dir, stat.mode & 0o700);
  }
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
