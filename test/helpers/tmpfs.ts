/** Small filesystems of their own for a test to fill or break (a tmpfs, an ext4 image; needs root). */
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

/**
 * A small ext4 filesystem (a loop-mounted image, `errors=remount-ro`) for test `t`, with `fail`,
 * which makes the kernel take it for damaged, so that it remounts it read-only under whatever has
 * files open there, as after a disk error; undefined, and `t` skipped, where that cannot be done.
 */
export function failingExt4For(t: TestContext, before: () => void): { dir: string; fail: () => void } | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mailnest-ext4-'));
  const image = `${dir}.img`;
  const cleanup = () => {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(image, { force: true });
  };
  const made = process.getuid?.() === 0
    && spawnSync('truncate', ['-s', '32M', image]).status === 0
    && spawnSync('mkfs.ext4', ['-qF', image]).status === 0
    && spawnSync('mount', ['-o', 'loop,errors=remount-ro', image, dir]).status === 0;
  const device = made ? path.basename(spawnSync('findmnt', ['-n', '-o', 'SOURCE', dir], { encoding: 'utf8' }).stdout.trim()) : '';
  const trigger = `/sys/fs/ext4/${device}/trigger_fs_error`;
  if (!made || !device || !fs.existsSync(trigger)) {
    cleanup();
    t.skip('needs root, loop devices, mkfs.ext4 and ext4\'s trigger_fs_error');
    return undefined;
  }
  t.after(() => {
    before();
    cleanup();
  });
  return { dir, fail: () => fs.writeFileSync(trigger, 'mailnest test\n') };
}

/** Writes `file` until its filesystem has `leave` bytes free, or none when 0 (ENOSPC). */
export function fillUp(file: string, leave = 0): void {
  const fd = fs.openSync(file, 'a');
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const free = () => {
    const st = fs.statfsSync(path.dirname(file));
    return st.bavail * st.bsize;
  };
  try {
    while (free() > leave + chunk.length) fs.writeSync(fd, chunk);
    if (leave === 0) for (;;) fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
}
