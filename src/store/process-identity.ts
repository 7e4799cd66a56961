/**
 * Who a process is, beyond its pid: the machine's boot and the moment the process started
 * (Linux's /proc). A pid is used again, by anything, after the process ends, and after a reboot a
 * service started at boot often gets the same one; a process that has ended but is not yet
 * reaped (a zombie) still answers kill(pid, 0). The boot and start time tell the writer of a file
 * from whatever has its pid now.
 */
import fs from 'node:fs';

/** The kernel's id of this boot, read once; undefined without /proc. */
let boot: string | undefined | null = null;

function bootId(): string | undefined {
  if (boot === null) boot = readOrUndefined('/proc/sys/kernel/random/boot_id')?.trim();
  return boot;
}

/**
 * "BOOT START" for the process `pid` as it is now (start in clock ticks after boot, proc(5)
 * field 22); 'gone' when no process has that pid or it has ended (a zombie); undefined when the
 * system does not tell (no /proc).
 */
export function processIdentity(pid: number): string | 'gone' | undefined {
  const boot = bootId();
  if (boot === undefined) return undefined;
  const stat = readOrUndefined(`/proc/${pid}/stat`);
  if (stat === undefined) return 'gone';
  // The name in parentheses may hold spaces and parentheses: the fields follow the last ")".
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [state] = fields;
  if (state === 'Z' || state === 'X' || fields[19] === undefined) return 'gone';
  return `${boot} ${fields[19]}`;
}

function readOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}
