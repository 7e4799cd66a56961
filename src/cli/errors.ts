/** Errors the CLI reports as one line on stderr, with the exit status they carry. */
import { isStorageFull, NoRoom } from '../store/store.ts';

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** Bad usage: exit status 2. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** What a failure says on its one line: a full disk as such, whatever reported it. */
export function failureText(err: unknown): string {
  if (err instanceof NoRoom) return `the disk holding data_dir is nearly full (${err.message}): free some space and try again`;
  if (isStorageFull(err)) return `the disk holding data_dir is full (${(err as Error).message}): free some space and try again`;
  return err instanceof Error ? err.message : String(err);
}
