import type { Change, Snapshot } from "../gen/keyward/replication/v1/replication_pb.js";
import type { Db } from "../keys/db.js";
import { INSERT_ROW, protoToRow } from "./rows.js";

/**
 * Writes what a primary streams into a replica's database: a snapshot, in
 * chunks, as one transaction; each change in a transaction of its own; both
 * record the sequence they bring the file to (the replica_state row).
 */
export class ReplicaWriter {
  readonly #db: Db;
  readonly #now: () => number;
  readonly #statements;

  constructor(db: Db, now: () => number) {
    this.#db = db;
    this.#now = now;
    this.#statements = {
      state: db.prepare<[], { applied_seq: number }>(
        "SELECT applied_seq FROM replica_state WHERE id = 1",
      ),
      setState: db.prepare(
        "INSERT INTO replica_state (id, applied_seq, applied_at) VALUES (1, ?, ?) ON CONFLICT (id) DO UPDATE SET applied_seq = excluded.applied_seq, applied_at = excluded.applied_at",
      ),
      upsert: db.prepare(INSERT_ROW),
      remove: db.prepare("DELETE FROM keys WHERE id = ?"),
      clear: db.prepare("DELETE FROM keys"),
    };
  }

  /** The sequence the file holds, or undefined before its first snapshot completed. */
  applied(): number | undefined {
    const applied = this.#statements.state.get()?.applied_seq;
    // -1 marks a first snapshot still being applied (see applySnapshot).
    return applied === undefined || applied < 0 ? undefined : applied;
  }

  /** Applies one chunk; returns the snapshot's sequence once its last chunk committed. */
  applySnapshot(snapshot: Snapshot): number | undefined {
    const db = this.#db;
    // The whole snapshot is one transaction across its chunks: Check keeps
    // reading the previous copy until the new one commits.
    if (snapshot.first) {
      if (db.inTransaction) db.exec("ROLLBACK");
      db.exec("BEGIN IMMEDIATE");
      // The replica_state row switches the change-log triggers off; write a
      // placeholder first, so a first snapshot is not logged as local changes.
      if (this.#statements.state.get() === undefined)
        this.#statements.setState.run(-1, this.#now());
      this.#statements.clear.run();
    }
    if (!db.inTransaction) throw new Error("snapshot chunk without its first chunk");
    for (const row of snapshot.rows) this.#statements.upsert.run(protoToRow(row));
    if (!snapshot.last) return undefined;
    const sequence = Number(snapshot.sequence);
    this.#statements.setState.run(sequence, this.#now());
    db.exec("COMMIT");
    return sequence;
  }

  /** Applies one change; returns its sequence. */
  applyChange(change: Change): number {
    const sequence = Number(change.sequence);
    this.#db.transaction(() => {
      if (change.deleted || !change.row) this.#statements.remove.run(change.keyId);
      else this.#statements.upsert.run(protoToRow(change.row));
      this.#statements.setState.run(sequence, this.#now());
    })();
    return sequence;
  }

  /** Drops a snapshot left half-applied by a stream that ended. */
  abandon(): void {
    if (this.#db.inTransaction) this.#db.exec("ROLLBACK");
  }
}
