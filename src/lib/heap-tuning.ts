import { getHeapStatistics, setFlagsFromString } from "node:v8";

/**
 * How far V8 may let the heap grow past what survived the last full
 * collection before it starts the next one: 100 % = twice the live size.
 * Under the image's heap cap (`--max-old-space-size=96`) V8's own factor is
 * at most 1.3, so a process that promotes request garbage runs a
 * mark-compact every few megabytes; without a cap V8 picks up to 4, and a
 * long-lived keyward's heap and its collections' work grow with it. Fixed at
 * 2, keyward cost 9–26 % less CPU per Check under the cap and ~15 % less
 * without one, over a process's life under repeated load (bench/NOTES.md,
 * fourth and sixth rounds).
 */
export const HEAP_GROWING_PERCENT = 100;

/** What {@link tuneHeap} found and did; logged in the "keyward started" line. */
export interface HeapTuning {
  /** V8's heap size limit, MB (the old-generation cap plus the young generation). */
  readonly limitMb: number;
  /** The growing percent now in force. */
  readonly growingPercent: number;
  /** Who set it: keyward, or node's command line (which wins). */
  readonly by: "keyward" | "command line";
}

let applied: HeapTuning | undefined;

/**
 * Sets V8's heap growing factor, however node was started: `keyward serve`,
 * `npx keyward serve`, `npm start`, the image, a Check worker. Node refuses `--heap-growing-percent` in NODE_OPTIONS, and V8
 * reads the flag at every full collection, so setting it at run time, before
 * the server allocates anything, has the command-line flag's effect
 * (test/heap-tuning.test.ts counts the collections). A growing percent given
 * on node's command line wins. Called once per process, first thing.
 */
export function tuneHeap(
  execArgv: readonly string[] = process.execArgv,
  limitBytes: number = getHeapStatistics().heap_size_limit,
): HeapTuning {
  const limitMb = Math.round(limitBytes / 1024 ** 2);
  const given = execArgv
    .map((arg) => /^--heap[-_]growing[-_]percent=(\d+)$/.exec(arg)?.[1])
    .findLast((value) => value !== undefined);
  if (given !== undefined) {
    applied = { limitMb, growingPercent: Number(given), by: "command line" };
  } else {
    setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
    applied = { limitMb, growingPercent: HEAP_GROWING_PERCENT, by: "keyward" };
  }
  return applied;
}

/**
 * The tuning this process applied (bin/keyward.js and the Check workers'
 * entry call {@link tuneHeap} first thing); undefined when keyward runs
 * embedded, e.g. in a test, where the host process owns its V8 flags.
 */
export function appliedHeapTuning(): HeapTuning | undefined {
  return applied;
}
