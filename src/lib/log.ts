import { basename, dirname } from "node:path";
import { type DestinationStream, type Logger, pino } from "pino";
import { createStream, type RotatingFileStream } from "rotating-file-stream";

export type { Logger };

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** pino level name; default "info". */
  readonly level?: string;
  /** Where lines go; default standard error, so stdout stays free for CLI output. */
  readonly destination?: DestinationStream;
}

/** What a censored `authorization` value is written as. */
const CENSOR = "[redacted]";

let stampedAt = Number.NaN;
let stamp = "";

/**
 * pino's ISO-8601 `time` field, formatted once per millisecond: under load
 * many deny lines share a millisecond, and formatting a Date each time was a
 * measurable share of a line's cost (bench/NOTES.md).
 */
function isoTime(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

let stderr: DestinationStream | undefined;

/**
 * Standard error, written once per turn of the event loop: lines logged
 * while one turn runs (under load, the deny lines of every Check that turn
 * decides) are joined and go out in one synchronous write when it ends,
 * instead of one system call each, which cost 2–4 µs of a denied Check
 * (bench/NOTES.md, eighth round). A line is never held longer than the
 * turn it was logged in; what is pending when the process exits is written
 * then. sonic-boom does the writing (retrying a full pipe). One per process.
 */
function standardError(): DestinationStream {
  if (stderr) return stderr;
  const out = pino.destination({ dest: 2, sync: true });
  let pending: string[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    out.write(text);
  };
  process.on("exit", flush);
  stderr = {
    write(line: string): void {
      if (pending.push(line) === 1) setImmediate(flush);
    },
  };
  return stderr;
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
      timestamp: isoTime,
      // A last line of defence: if an authorization header ever reaches a
      // log call, it is censored rather than written out. (The deny lines'
      // own child narrows this: see decisionLogger.)
      redact: {
        paths: ["authorization", "*.authorization", "headers.authorization"],
        censor: CENSOR,
      },
    },
    options.destination ?? standardError(),
  );
}

/**
 * The child a transport's deny lines go to (one per denied request, see
 * pipeline/log-decision.ts). Those lines are built from fixed scalar fields and
 * never carry a header map, so this child censors `authorization` at the top
 * level and under `err` only: the root's one-level wildcard costs a few
 * microseconds per line, a large share of a denied Check (bench/NOTES.md).
 */
export function decisionLogger(logger: Logger, name: string): Logger {
  return logger.child(
    { name },
    { redact: { paths: ["authorization", "err.authorization"], censor: CENSOR } },
  );
}

/** Options for {@link rotatingFile}. */
export interface RotatingFileOptions {
  /** The file lines are written to; rotated copies are FILE.1 (newest) … FILE.N. */
  readonly path: string;
  /** Size past which the file is rotated: digits and B, K, M or G (e.g. "10M"). */
  readonly maxSize: string;
  /** Rotated copies kept (N); older ones are deleted. */
  readonly maxFiles: number;
}

/**
 * A log destination that rotates by size, as logrotate would (FILE,
 * FILE.1, … FILE.N), through rotating-file-stream: lines written while a
 * rotation runs are buffered by the stream and land in the new file, so
 * none is lost or split across two files. End it to flush.
 */
export function rotatingFile(options: RotatingFileOptions): RotatingFileStream {
  return createStream(basename(options.path), {
    path: `${dirname(options.path)}/`,
    size: options.maxSize,
    rotate: options.maxFiles,
  });
}
