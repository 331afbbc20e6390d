import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ReplicationService } from "../gen/keyward/replication/v1/replication_pb.js";
import type { Db } from "../keys/db.js";
import type { UsageStore } from "../keys/usage.js";
import type { Logger } from "../lib/log.js";
import { AckTracker, ackAppliedHandler } from "./acks.js";
import { ChangeFeed } from "./feed.js";
import type { CommitNotifier } from "./notifier.js";
import { SnapshotCache } from "./snapshots.js";
import { reportUsageHandler } from "./usage.js";
import { createWatchHandler } from "./watch.js";

/** Options for {@link createReplicationPrimary}. */
export interface ReplicationOptions {
  /** The primary's database file; the feed and snapshots read it through connections of their own. */
  readonly database: string;
  readonly token: string;
  readonly notifier: CommitNotifier;
  /** Where replicas' usage reports are merged (the admin API's connection). */
  readonly usage: UsageStore;
  readonly logger: Logger;
  /** A heartbeat goes out this often on every stream; default 1000 ms. */
  readonly heartbeatMs?: number;
  /** Replicas that must confirm a change (`replication.sync_replicas`); default 0. */
  readonly syncReplicas?: number;
  /** Replicas sent a snapshot at once (`replication.max_concurrent_snapshots`); default 16. */
  readonly maxConcurrentSnapshots?: number;
}

/** The primary's side of replication on the admin port. */
export interface ReplicationPrimary {
  /** Serves Watch on an HTTP/2 gRPC request; false when the request is not a Watch call. */
  readonly streams: (req: Http2ServerRequest, res: Http2ServerResponse) => boolean;
  /** The Connect routes of ReplicationService (Watch over other protocols is refused there). */
  readonly routes: (router: ConnectRouter) => ConnectRouter;
  readonly feed: ChangeFeed;
  readonly snapshots: SnapshotCache;
  /** What each replica confirmed it applied. */
  readonly acks: AckTracker;
  start(): void;
  close(): Promise<void>;
}

/**
 * keyward.replication.v1.ReplicationService on the primary: one change feed
 * and one snapshot cache shared by every replica's Watch stream (feed.ts,
 * snapshots.ts, watch.ts).
 */
export function createReplicationPrimary(options: ReplicationOptions): ReplicationPrimary {
  const acks = new AckTracker();
  const feed = new ChangeFeed({
    database: options.database,
    ackRequested: (options.syncReplicas ?? 0) > 0,
    notifier: options.notifier,
    logger: options.logger,
    ...(options.heartbeatMs && { heartbeatMs: options.heartbeatMs }),
  });
  const snapshots = new SnapshotCache({
    database: options.database,
    logger: options.logger,
    ...(options.maxConcurrentSnapshots && { maxConcurrent: options.maxConcurrentSnapshots }),
  });
  const streams = createWatchHandler({
    feed,
    snapshots,
    token: options.token,
    logger: options.logger,
  });
  return {
    streams,
    routes: (router) =>
      router.service(ReplicationService, {
        // Reached only by a Watch that is not gRPC over HTTP/2 (streams() took those).
        // biome-ignore lint/correctness/useYield: it refuses before any message
        async *watch() {
          throw new ConnectError("Watch is served over gRPC on HTTP/2 only", Code.Unimplemented);
        },
        ackApplied: ackAppliedHandler(acks, options.token),
        reportUsage: reportUsageHandler({
          token: options.token,
          store: options.usage,
          logger: options.logger,
        }),
      }),
    feed,
    snapshots,
    acks,
    start: () => feed.start(),
    async close() {
      snapshots.close();
      await feed.close();
    },
  };
}

/** Deletes change-log entries beyond the newest `retain`; a replica further behind gets a snapshot. */
export function compactChanges(db: Db, retain: number): number {
  return db
    .prepare(
      "DELETE FROM changes WHERE seq <= (SELECT seq FROM sqlite_sequence WHERE name = 'changes') - ?",
    )
    .run(retain).changes;
}
