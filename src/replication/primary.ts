import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  ReplicationService,
  type WatchRequest,
  type WatchResponse,
  WatchResponseSchema,
} from "../gen/keyward/replication/v1/replication_pb.js";
import { type Db, openDatabase } from "../keys/db.js";
import type { Logger } from "../lib/log.js";
import type { CommitNotifier } from "./notifier.js";
import { REPLICATED_COLUMNS, type ReplicatedRow, rowToProto } from "./rows.js";
import { tokenMatches } from "./token.js";

/** Options for {@link replicationRoutes}. */
export interface ReplicationOptions {
  /** The primary's database file; each stream reads it through a connection of its own. */
  readonly database: string;
  readonly token: string;
  readonly notifier: CommitNotifier;
  readonly logger: Logger;
  /** A heartbeat goes out after this long without changes; default 1000 ms. */
  readonly heartbeatMs?: number;
}

const SNAPSHOT_CHUNK_ROWS = 1000;
const CHANGE_BATCH = 500;

/**
 * keyward.replication.v1.ReplicationService on the primary's admin port.
 * Each Watch stream reads the change log from SQLite as the replica consumes
 * it: the stream's generator only pulls the next batch once the previous
 * messages were written, so a slow replica costs the primary one batch of
 * memory, never a growing buffer.
 *
 * The two streams (Watch and Snapshot) share the token check, the
 * connection and the notifier, so they are declared together.
 */
export function replicationRoutes(options: ReplicationOptions) {
  const heartbeatMs = options.heartbeatMs ?? 1000;
  const log = options.logger;

  async function* watch(
    request: WatchRequest,
    context: HandlerContext,
  ): AsyncGenerator<WatchResponse> {
    // An unauthenticated client receives nothing: refuse before the first message.
    if (!tokenMatches(context.requestHeader.get("authorization"), options.token)) {
      log.warn(
        { peer: context.requestHeader.get("x-forwarded-for") ?? undefined },
        "replication watch refused: bad token",
      );
      throw new ConnectError("replication token required", Code.Unauthenticated);
    }
    const db = openDatabase(options.database, { readonly: true });
    const statements = prepare(db);
    let sequence = Number(request.fromSequence);
    try {
      const oldest = statements.oldest.get() ?? undefined;
      const newest = statements.newest.get() ?? 0;
      const behindLog = oldest !== undefined && sequence < oldest - 1;
      const emptyLogGap = oldest === undefined && sequence < newest;
      if (sequence <= 0 || behindLog || emptyLogGap || sequence > newest) {
        log.info({ from: sequence, oldest, newest }, "replica needs a snapshot");
        sequence = yield* snapshot(db);
      } else {
        log.info({ from: sequence, newest }, "replica resumes from its sequence");
      }
      while (!context.signal.aborted) {
        const batch = statements.changes.all(sequence, CHANGE_BATCH);
        if (batch.length === 0) {
          const committed = await options.notifier.wait(heartbeatMs, context.signal);
          if (!committed && !context.signal.aborted) {
            yield create(WatchResponseSchema, {
              event: {
                case: "heartbeat",
                value: { sequence: BigInt(sequence), at: timestampNow() },
              },
            });
          }
          continue;
        }
        if ((batch[0]?.seq ?? 0) !== sequence + 1) {
          // The log was compacted past this replica while it was catching up.
          log.info({ at: sequence }, "change log compacted under a replica; sending a snapshot");
          sequence = yield* snapshot(db);
          continue;
        }
        for (const change of batch) {
          const row = statements.row.get(change.key_id);
          yield create(WatchResponseSchema, {
            event: {
              case: "change",
              value: {
                sequence: BigInt(change.seq),
                keyId: change.key_id,
                row: row ? rowToProto(row) : undefined,
                deleted: row === undefined,
              },
            },
          });
          sequence = change.seq;
        }
      }
    } finally {
      if (db.inTransaction) db.exec("ROLLBACK");
      db.close();
    }
  }

  /** Streams a consistent copy of the key table; returns the sequence it is as of. */
  async function* snapshot(db: Db): AsyncGenerator<WatchResponse, number> {
    db.exec("BEGIN");
    const sequence = prepare(db).newest.get() ?? 0;
    let rows: ReturnType<typeof rowToProto>[] = [];
    let first = true;
    for (const row of db
      .prepare<[], ReplicatedRow>(`SELECT ${REPLICATED_COLUMNS} FROM keys`)
      .iterate()) {
      rows.push(rowToProto(row));
      if (rows.length === SNAPSHOT_CHUNK_ROWS) {
        yield create(WatchResponseSchema, {
          event: {
            case: "snapshot",
            value: { sequence: BigInt(sequence), rows, first, last: false },
          },
        });
        rows = [];
        first = false;
      }
    }
    db.exec("COMMIT");
    yield create(WatchResponseSchema, {
      event: { case: "snapshot", value: { sequence: BigInt(sequence), rows, first, last: true } },
    });
    return sequence;
  }

  return (router: ConnectRouter) => router.service(ReplicationService, { watch });
}

function prepare(db: Db) {
  return {
    oldest: db.prepare<[], number>("SELECT min(seq) FROM changes").pluck() as unknown as {
      get(): number | undefined;
    },
    newest: db
      .prepare<[], number>("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
      .pluck() as unknown as {
      get(): number | undefined;
    },
    changes: db.prepare<[number, number], { seq: number; key_id: string }>(
      "SELECT seq, key_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
    ),
    row: db.prepare<[string], ReplicatedRow>(`SELECT ${REPLICATED_COLUMNS} FROM keys WHERE id = ?`),
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
