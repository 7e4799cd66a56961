/** Whether text is ASCII only: the test behind every choice between a form for ASCII and one
 *  for more (SMTPUTF8, A-labels, RFC 6533's global types). */
export function isAscii(text: string): boolean {
  return /^[\x00-\x7f]*$/.test(text);
}
