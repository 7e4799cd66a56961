/** `mailnest queue list|retry|remove`: the outbound queue. */
import type { Command } from 'commander';
import { withContext } from './common.ts';
import { CliError, UsageError } from './errors.ts';
import { printTable } from './table.ts';

/** When delivery to a recipient is next tried; null once it is delivered or has failed. */
function nextAttempt(r: { status: string; nextAttempt: number }): string | null {
  return r.status === 'queued' || r.status === 'deferred' ? new Date(r.nextAttempt).toISOString() : null;
}

export function registerQueue(program: Command): void {
  const queue = program.command('queue').description('the outbound queue');

  queue.command('list').description('list messages waiting for delivery')
    .option('--json', 'print a JSON array of {id, from, created, recipients: [{address, status, attempts, next_attempt, last_reply}]}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await withContext(cmd, async (ctx) => {
        const entries = await ctx.store.listQueue();
        if (opts.json) {
          const out = entries.map((e) => ({
            id: e.id,
            from: e.sender,
            created: new Date(e.created).toISOString(),
            recipients: e.recipients.map((r) => ({
              address: r.address,
              status: r.status,
              attempts: r.attempts,
              next_attempt: nextAttempt(r),
              last_reply: r.lastReply,
            })),
          }));
          process.stdout.write(`${JSON.stringify(out)}\n`);
          return;
        }
        const rows: string[][] = [];
        for (const e of entries) {
          for (const r of e.recipients) {
            rows.push([
              e.id, e.sender === '' ? '<>' : e.sender, r.address, r.status, String(r.attempts),
              nextAttempt(r) ?? '-', r.lastReply ?? '',
            ]);
          }
        }
        printTable(['ID', 'FROM', 'TO', 'STATUS', 'ATTEMPTS', 'NEXT ATTEMPT', 'LAST REPLY'], rows, 'the queue is empty');
      });
    });

  queue.command('retry [id]').description('attempt delivery now (the running server picks it up within a second)')
    .option('--all', 'every message in the queue')
    .action(async (id: string | undefined, opts: { all?: boolean }, cmd: Command) => {
      if (id === '') throw emptyId();
      if (id === undefined && !opts.all) throw new UsageError('give a queue id or --all');
      if (id !== undefined && opts.all) throw new UsageError('give a queue id or --all, not both');
      await withContext(cmd, async (ctx) => {
        if (id !== undefined && !(await ctx.store.getQueueEntry(id))) throw new CliError(`no queue entry ${id}`);
        const n = await ctx.store.retryNow(id, Date.now());
        process.stdout.write(`${n} recipient${n === 1 ? '' : 's'} scheduled for delivery now\n`);
      });
    });

  queue.command('remove <id>').description('remove a message from the queue without delivering it or bouncing it')
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      if (id === '') throw emptyId();
      await withContext(cmd, async (ctx) => {
        if (!(await ctx.store.removeQueued(id))) throw new CliError(`no queue entry ${id}`);
        process.stdout.write(`removed ${id}\n`);
      });
    });
}

/** `queue retry "$ID"` with ID unset: a usage slip, not an entry that is not there. */
function emptyId(): UsageError {
  return new UsageError('an empty queue id; `mailnest queue list` shows them');
}
