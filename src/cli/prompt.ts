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

/** What came after the line a prompt took (both passwords pasted or typed ahead at once): the
 *  next prompt's. `afterCr`: that line ended in CR, so an LF first is the same line end. */
const ahead = { text: '', afterCr: false };

function ask(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    let text = '';
    /** Reads typed characters; true once the answer is in. */
    const take = (typed: string): boolean => {
      const chars = [...typed];
      if (chars.length === 0) return false;
      if (ahead.afterCr && chars[0] === '\n') chars.shift();
      ahead.afterCr = false;
      for (let i = 0; i < chars.length; i++) {
        const ch = chars[i]!;
        if (ch === '\r' || ch === '\n') {
          const crlf = ch === '\r' && chars[i + 1] === '\n';
          ahead.text = chars.slice(i + (crlf ? 2 : 1)).join('');
          ahead.afterCr = ch === '\r' && !crlf && ahead.text === '';
          done();
          resolve(text);
          return true;
        }
        // Ctrl-C, or Ctrl-D (the end of input, which a raw terminal passes on as a character).
        if (ch === '\u0003' || ch === '\u0004') {
          done();
          reject(new CliError('cancelled'));
          return true;
        }
        if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else text += ch;
      }
      return false;
    };
    const onData = (chunk: Buffer) => { take(chunk.toString('utf8')); };
    const onEnd = () => {
      done();
      reject(new CliError('cancelled'));
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    // Raw before the prompt shows: what is typed at once is then read as typed, not by the
    // terminal's line editing (where Ctrl-D is the end of input).
    stdin.setRawMode(true);
    process.stderr.write(prompt);
    const typed = ahead.text;
    ahead.text = '';
    if (take(typed)) return;
    stdin.resume();
    stdin.on('data', onData);
    stdin.on('end', onEnd);
  });
}
