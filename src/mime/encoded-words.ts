/** RFC 2047 encoded-words for a run of words that need them, in a phrase or in unstructured text. */
import { encodeWord } from 'nodemailer/lib/mime-funcs';

/** The longest encoded-word (RFC 2047 §2); folded onto a line of its own after a space, it
 *  keeps to the 76 characters a line holding one may have. */
const ENCODED_WORD_LENGTH = 75;

/**
 * The words (with the spaces between them) as encoded-words: as many whole words in each as
 * fit, the space after a word inside the word before it, as a space between two encoded-words
 * is not shown (RFC 2047 §6.2); a word too long for one alone is split where it must be.
 * Python's address parser shows the space between two encoded-words all the same (CPython
 * gh-128110): split inside a word, a name would read as two. An empty word at either end is a
 * space there.
 */
export function encodedWords(words: string[]): string[] {
  const pieces: string[] = [];
  let piece: string[] = [];
  for (const word of words) {
    if (piece.length > 0 && encodedWord(`${[...piece, word].join(' ')} `).length > ENCODED_WORD_LENGTH) {
      pieces.push(encodedWord(`${piece.join(' ')} `));
      piece = [];
    }
    piece.push(word);
  }
  pieces.push(encodedWord(piece.join(' ')));
  return pieces;
}

/** The text as one encoded-word: Q, which leaves Latin letters readable, or B where Q is too
 *  long and B is not (B holds 23 Cyrillic letters, Q 10); text too long for either is split
 *  into several, B, at character boundaries. */
function encodedWord(text: string): string {
  const q = encodeWord(text, 'Q');
  if (q.length <= ENCODED_WORD_LENGTH) return q;
  const b = encodeWord(text, 'B');
  return b.length <= ENCODED_WORD_LENGTH ? b : encodeWord(text, 'B', ENCODED_WORD_LENGTH);
}
