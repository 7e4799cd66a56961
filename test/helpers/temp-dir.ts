/**
 * Temporary directories for tests, removed when the test file's process exits (node --test runs
 * each file in a process of its own), so that repeated runs do not fill the system's /tmp.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const made: string[] = [];

process.on('exit', () => {
  for (const dir of made) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // Still in use (a mount a failed test left): it stays, and the exit status is the tests'.
    }
  }
});

export function tempDir(prefix = 'mailnest-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}
