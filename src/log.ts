import { type DestinationStream, type Logger, pino } from "pino";

export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name; default "info". */
  readonly level?: string;
  /** Where lines go; default standard error, so stdout stays free for CLI output. */
  readonly destination?: DestinationStream;
}

/**
 * The root structured JSON logger. Subsystems take a named child
 * (`logger.child({ name: "check" })`). Nothing that logs may pass a secret or
 * a whole token; log the key id or lookup instead.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { service: "keyward" },
      timestamp: pino.stdTimeFunctions.isoTime,
      // A last line of defence: if an authorization header ever reaches a
      // log call, it is censored rather than written out.
      redact: {
        paths: ["authorization", "*.authorization", "headers.authorization"],
        censor: "[redacted]",
      },
    },
    options.destination ?? pino.destination(2),
  );
}
