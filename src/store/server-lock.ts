/**
 * One server per data directory. Two would each think they hold every POP3 maildrop lock, and
 * both would deliver the queue. `data_dir/server.pid` names the running server; a file whose
 * process has ended, or that names this very process (a container's pid 1 after a restart),
 * is what a crash left, and is taken over. The CLI's other commands need no lock: SQLite
 * orders their writes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { processRuns } from './process-alive.ts';

export class ServerLock {
  private readonly file: string;

  private constructor(file: string) {
    this.file = file;
  }

  /** Throws, naming the other server, when one runs on `dataDir`. */
  static acquire(dataDir: string): ServerLock {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(dataDir, 'server.pid');
    // Written whole under another name, then linked: no one ever reads a half-written pid.
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
    try {
      for (;;) {
        try {
          fs.linkSync(tmp, file);
          return new ServerLock(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const pid = Number.parseInt(readIfThere(file), 10);
        if (pid > 0 && pid !== process.pid && processRuns(pid)) {
          throw new Error(`data_dir ${dataDir} is in use by another mailnest server (pid ${pid}); stop it, or give this one a data_dir of its own`);
        }
        // Stale: taken over (if another starting server takes it first, the loop sees it run).
        fs.rmSync(file, { force: true });
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }

  release(): void {
    if (readIfThere(this.file).trim() === String(process.pid)) fs.rmSync(this.file, { force: true });
  }
}

function readIfThere(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}
