/** True while process `pid` runs (as any user). A pid taken since by an unrelated process
 *  counts as running: the caller waits until that one ends. */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
