/**
 * data_dir holds password hashes, mail and private keys: it is made, or kept, private to the
 * user mailnest runs as (0700). A directory made in advance with the usual 0755
 * (`/var/lib/mailnest`) would otherwise let every local user read the database: one of this
 * user's that is empty or already mailnest's is made 0700. Any other (data_dir = "." in a home
 * directory, a shared one with the sticky bit like /tmp) is left as it is, and the server warns
 * at start. Errors name the key and what to do, where the system's would name only a path.
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
  if ((stat.mode & 0o077) !== 0 && (stat.mode & 0o1000) === 0 && stat.uid === process.getuid?.() && isMailnests(dir)) {
    fs.chmodSync(dir, stat.mode & 0o700);
  }
}

/** Empty, or holding mailnest's database: a directory for mailnest alone. */
function isMailnests(dir: string): boolean {
  const names = fs.readdirSync(dir);
  return names.length === 0 || names.includes('mailnest.sqlite') || names.includes('server.lock');
}
