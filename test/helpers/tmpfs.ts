/** A small filesystem of its own for a test to fill (a tmpfs; needs root). */
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * A new directory with a tmpfs of `size` (as mount takes it: "8m") mounted on it, or undefined
 * (and nothing left behind) where none can be mounted. `unmount` takes it away, waiting for the
 * last descriptors on it to close (a flush under way), then detaching it if they do not.
 */
export function mountTmpfs(size: string): { dir: string; unmount: () => Promise<void> } | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-tmpfs-'));
  if (process.getuid?.() !== 0 || spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]).status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  const unmount = async () => {
    let unmounted = false;
    for (let i = 0; i < 50 && !unmounted; i++) {
      unmounted = spawnSync('umount', [dir]).status === 0;
      if (!unmounted) await new Promise((r) => setTimeout(r, 100));
    }
    if (!unmounted) spawnSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { dir, unmount };
}

/**
 * A tmpfs of `size` for test `t`, taken away when it ends, after `before` (closing what holds
 * files there); undefined, and `t` skipped, where none can be mounted.
 */
export function tmpfsFor(t: TestContext, size: string, before: () => void): string | undefined {
  const disk = mountTmpfs(size);
  if (!disk) {
    t.skip('needs root, and the right to mount a small tmpfs');
    return undefined;
  }
  t.after(async () => {
    before();
    await disk.unmount();
  });
  return disk.dir;
}
