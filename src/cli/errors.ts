/** Exit statuses: 0 done (or allowed), 1 failed at run time, 2 bad usage or configuration, 3 denied. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_DENIED = 3;

/** A flag value that parses but makes no sense: exit 2 with its one-line message. */
export class UsageError extends Error {}

/** Ends a command that has printed its answer with a status other than 0 (`check` on a deny). */
export class ExitStatus extends Error {
  constructor(readonly code: number) {
    super(`exit status ${code}`);
  }
}
