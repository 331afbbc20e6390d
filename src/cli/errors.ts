/** A flag value that parses but makes no sense: exit 2 with its one-line message. */
export class UsageError extends Error {}
