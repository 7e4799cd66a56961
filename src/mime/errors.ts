/** Input that cannot make a message; `field` names what was wrong (e.g. "to", "headers[2]"),
 *  `instead` the field to use for it, when the message names one (quoted). */
export class ComposeError extends Error {
  readonly field: string;
  readonly instead: string | undefined;
  constructor(field: string, message: string, instead?: string) {
    super(`${field}: ${message}`);
    this.field = field;
    this.instead = instead;
  }
}
