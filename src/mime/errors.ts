/** Input that cannot make a message; `field` names what was wrong (e.g. "to", "headers[2]"). */
export class ComposeError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}
