import type { Config } from "../config/schema.js";
import { type Db, openDatabase } from "../keys/db.js";
import { UsageTally } from "../keys/usage.js";
import { durationMs } from "../lib/duration.js";
import type { Logger } from "../lib/log.js";
import { primaryTransport, ReplicaSync } from "../replication/replica.js";
import { UsageReporter } from "../replication/usage.js";
import type { TlsFiles } from "./files.js";

/**
 * SQLite's page cache per connection on a replica, KiB. better-sqlite3
 * builds SQLite with 16 MiB per connection, and a replica has two: the
 * sync connection writing what the primary streams (a snapshot fills all
 * 16 MiB and keeps it) and the decider's, whose point lookups sit behind
 * the key verifier's own cache. The file's pages stay in the kernel's page
 * cache either way (bench/NOTES.md, "Replica footprint").
 */
export const REPLICA_PAGE_CACHE_KIB = { sync: 1024, reads: 2048 } as const;

/** Options for {@link createReplicaSide}. */
export interface ReplicaSideOptions {
  readonly config: Config;
  readonly token: string;
  readonly tls: TlsFiles | undefined;
  readonly logger: Logger;
  readonly now: () => number;
  /** The clock given to create(), if any (the sync stamps applied_at with it). */
  readonly clock?: (() => number) | undefined;
}

/** What a replica adds to keyward: the sync from its primary and the usage it reports there. */
export interface ReplicaSide {
  /** The connection the sync writes through (closed last, by the composition root). */
  readonly db: Db;
  readonly sync: ReplicaSync;
  readonly reporter: UsageReporter;
  /** Why the replica cannot decide right now, if it cannot. */
  readonly unavailable: () => string | undefined;
  /** Caps the page cache of the connection Check reads through (the decider's). */
  limitReads(db: Db): void;
}

/**
 * A replica's own parts, built only for role replica (the composition root
 * imports this module then): its file is written only by what its primary
 * streams, through a connection of its own; Check reads it through the
 * decider's. Its Check usage (its workers' included) goes to the primary.
 */
export function createReplicaSide(options: ReplicaSideOptions): ReplicaSide {
  const { config, token, tls, logger } = options;
  const primary = config.replication.primary as string;
  const db = openDatabase(config.database, { busyTimeoutMs: 1000 });
  limitPageCache(db, REPLICA_PAGE_CACHE_KIB.sync);
  const sync = new ReplicaSync({
    primary,
    token,
    ...(tls && { tls }),
    db,
    logger: logger.child({ name: "replication" }),
    ...(options.clock && { now: options.clock }),
  });
  const reporter = new UsageReporter({
    transport: primaryTransport(primary, tls),
    token,
    tally: new UsageTally(undefined, options.now),
    intervalMs: durationMs(config.replication.usage_interval) as number,
    logger: logger.child({ name: "usage" }),
  });
  return {
    db,
    sync,
    reporter,
    unavailable: replicaUnavailable(sync, config, options.now),
    limitReads: (reads) => limitPageCache(reads, REPLICA_PAGE_CACHE_KIB.reads),
  };
}

/** Caps a connection's SQLite page cache (negative cache_size is KiB). */
function limitPageCache(db: Db, kib: number): void {
  db.pragma(`cache_size = -${kib}`);
}

/**
 * Why a replica cannot decide right now: it has never received a snapshot,
 * or it has not heard its primary for longer than `max_staleness`.
 */
function replicaUnavailable(
  sync: ReplicaSync,
  config: Config,
  now: () => number,
): () => string | undefined {
  const staleness = config.replication.max_staleness
    ? durationMs(config.replication.max_staleness)
    : undefined;
  return () => {
    const status = sync.status();
    if (!status.synced) return "replica has no snapshot from its primary yet";
    if (
      staleness !== undefined &&
      (status.lastHeardAt === undefined || now() - status.lastHeardAt > staleness)
    ) {
      return "replica is staler than max_staleness";
    }
    return undefined;
  };
}
