/** Asks for a password on the terminal without echoing it; reads a line from stdin otherwise. */
import { readStdinLine } from './common.ts';
import { CliError, UsageError } from './errors.ts';

export async function readPassword(fromStdin: boolean, prompt = 'Password: '): Promise<string> {
  if (fromStdin || !process.stdin.isTTY) {
    const line = await readStdinLine();
    if (line === '') throw new UsageError('no password on stdin (an empty line gives none)');
    return line;
  }
  const first = await ask(prompt);
  const second = await ask('Again: ');
  // A typing slip, not a wrong command line: a failure (exit 1), as for any other command.
  if (first !== second) throw new CliError('the passwords do not match; nothing was changed');
  if (first === '') throw new UsageError('an empty password is not allowed');
  return first;
}

function ask(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    // Raw before the prompt shows: what is typed at once is then read as typed, not by the
    // terminal's line editing (where Ctrl-D is the end of input).
    stdin.setRawMode(true);
    process.stderr.write(prompt);
    stdin.resume();
    let text = '';
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(text);
          return;
        }
        // Ctrl-C, or Ctrl-D (the end of input, which a raw terminal passes on as a character).
        if (ch === '\u0003' || ch === '\u0004') {
          done();
          reject(new UsageError('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else text += ch;
      }
    };
    const onEnd = () => {
      done();
      reject(new UsageError('cancelled'));
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}
