import { getHeapStatistics, setFlagsFromString } from "node:v8";
import type { Logger } from "./log.js";

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

/**
 * A replica's growing percent, set once its role is read
 * ({@link tuneHeapForRole}): 50 % = one and a half times the live size.
 * A sidecar's peak is what a pod's memory limit must hold, and under
 * saturated Check at K = 100,000 the old generation's growth is most of it:
 * 115 MB peak instead of 131 MB, at a CPU cost per Check within the
 * bench's noise (bench/NOTES.md, "Replica footprint").
 */
export const REPLICA_HEAP_GROWING_PERCENT = 50;

/**
 * V8's sizing per role, as node options: the one place they are declared.
 * deploy/Dockerfile sets the single/primary line as the image's NODE_OPTIONS
 * and deploy/kubernetes/replica-sidecar-patch.yaml the replica's
 * (test/deploy checks both). Both cap the old generation at 96 MB (a
 * sidecar should not let the heap grow toward the node's memory before
 * collecting). A replica also keeps V8's young generation at 1 MB
 * semi-spaces instead of up to 16 MB: 30 MB less resident after start and
 * at peak, with Check throughput within run-to-run noise (bench/NOTES.md,
 * "Replica footprint"). The primary keeps V8's default: it encodes
 * snapshots, whose garbage a small young generation would promote.
 *
 * These must be node options, not run-time flags: V8 sizes the young
 * generation when the isolate is created, and
 * `v8.setFlagsFromString("--max-semi-space-size=1")` afterwards leaves it at
 * 16 MB (measured). Node accepts both flags in NODE_OPTIONS.
 */
export const ROLE_NODE_OPTIONS: Readonly<Record<"single" | "primary" | "replica", string>> = {
  single: "--max-old-space-size=96",
  primary: "--max-old-space-size=96",
  replica: "--max-old-space-size=96 --max-semi-space-size=1",
};

/**
 * The node flag every way of starting keyward passes (the `keyward`
 * command's `#!` line, `npm start`, the image's ENTRYPOINT; a Check worker
 * inherits it): V8's memory reducer off. Left on, it runs a "reduce"
 * mark-compact once a process has been idle ~8 s after start-up, shrinking
 * the heap it committed (53 to 21 MB in keyward), and a sidecar whose first
 * Checks came after that cost 20–30 % more CPU per Check for the rest of its
 * life than one loaded sooner (bench/NOTES.md, ninth round). A sidecar
 * usually waits longer than that for its first request. V8 creates the
 * reducer with the heap, so the flag must be on node's command line
 * (`v8.setFlagsFromString` afterwards was measured to change nothing), and
 * node refuses it in NODE_OPTIONS.
 */
export const NODE_FLAGS = "--no-memory-reducer";

/** What {@link tuneHeap} found and did; logged in the "keyward started" line. */
export interface HeapTuning {
  /** V8's heap size limit, MB (the old-generation cap plus the young generation). */
  readonly limitMb: number;
  /** `--max-semi-space-size` given to node (command line or NODE_OPTIONS), MB; absent: V8's default. */
  readonly semiSpaceMb?: number;
  /** The growing percent now in force. */
  readonly growingPercent: number;
  /** Who set it: keyward, or node's command line (which wins). */
  readonly by: "keyward" | "command line";
  /** Whether V8's memory reducer runs: false when node was started with {@link NODE_FLAGS}. */
  readonly memoryReducer: boolean;
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
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): HeapTuning {
  const limitMb = Math.round(limitBytes / 1024 ** 2);
  const semiSpace = flagValue([...nodeOptions.split(/\s+/), ...execArgv], "max-semi-space-size");
  const sizes = {
    limitMb,
    ...(semiSpace !== undefined && { semiSpaceMb: Number(semiSpace) }),
    // The last of `--memory-reducer` / `--no-memory-reducer` wins, as in V8.
    memoryReducer: !execArgv
      .findLast((arg) => /^--(no[-_])?memory[-_]reducer$/.test(arg))
      ?.startsWith("--no"),
  };
  const given = flagValue(execArgv, "heap-growing-percent");
  if (given !== undefined) {
    applied = { ...sizes, growingPercent: Number(given), by: "command line" };
  } else {
    setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
    applied = { ...sizes, growingPercent: HEAP_GROWING_PERCENT, by: "keyward" };
  }
  return applied;
}

/**
 * The role's flags from {@link ROLE_NODE_OPTIONS} that node was not started
 * with (command line or NODE_OPTIONS); a different value counts as given.
 * The composition root warns about them at start.
 */
export function missingRoleFlags(
  role: keyof typeof ROLE_NODE_OPTIONS,
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? "",
): string[] {
  const given = [...nodeOptions.split(/\s+/), ...execArgv];
  return ROLE_NODE_OPTIONS[role]
    .split(" ")
    .filter((flag) => flagValue(given, flag.slice(2, flag.indexOf("="))) === undefined);
}

/**
 * A process started by bin/keyward.js without {@link NODE_FLAGS} (e.g.
 * `node bin/keyward.js serve` typed by hand) says so once, at start: its
 * Checks may cost a fifth more after an idle start. Not when embedded.
 */
export function warnIfMemoryReducer(logger: Logger): void {
  if (applied === undefined || !applied.memoryReducer) return;
  logger.warn(
    { missing: [NODE_FLAGS] },
    `node was started without ${NODE_FLAGS}: after an idle start each Check may cost ~25 % more CPU; use the keyward command or add the flag (README, "Performance")`,
  );
}

/**
 * A replica started by bin/keyward.js without its V8 sizing (a sidecar in
 * every pod: the young generation alone is ~30 MB more) says so once, at
 * start. Not single or primary, whose image sets theirs; not when embedded.
 */
export function warnIfUnsized(role: keyof typeof ROLE_NODE_OPTIONS, logger: Logger): void {
  if (role !== "replica" || applied === undefined) return;
  const missing = missingRoleFlags(role);
  if (missing.length === 0) return;
  logger.warn(
    { missing, nodeOptions: ROLE_NODE_OPTIONS[role] },
    'replica started without its V8 sizing: set NODE_OPTIONS as README "Replica memory" shows',
  );
}

/** The last value of `--name=value` among node's arguments (`-` and `_` alike), if any. */
function flagValue(args: readonly string[], name: string): string | undefined {
  const pattern = new RegExp(`^--${name.replace(/-/g, "[-_]")}=(\\d+)$`);
  return args.map((arg) => pattern.exec(arg)?.[1]).findLast((value) => value !== undefined);
}

/**
 * Applies the role's growing percent once the configuration is read (a
 * replica's is {@link REPLICA_HEAP_GROWING_PERCENT}; V8 reads the flag at
 * every full collection, so it takes effect from the next). A growing
 * percent on node's command line still wins, and nothing changes when
 * keyward runs embedded ({@link tuneHeap} was not called).
 */
export function tuneHeapForRole(role: keyof typeof ROLE_NODE_OPTIONS): HeapTuning | undefined {
  const percent = role === "replica" ? REPLICA_HEAP_GROWING_PERCENT : HEAP_GROWING_PERCENT;
  if (!applied || applied.by === "command line" || applied.growingPercent === percent) {
    return applied;
  }
  setFlagsFromString(`--heap-growing-percent=${percent}`);
  applied = { ...applied, growingPercent: percent };
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
