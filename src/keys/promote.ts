import type { Db } from "./db.js";

/**
 * Turns a replica's database into a primary's (`keyward promote`): the
 * sequence continues from the last change the replica applied, so replicas
 * that resume against it neither lose nor repeat a change (one that is
 * further along than the replica was, or behind it, gets a snapshot). The
 * replica_state row goes, which switches the change-log triggers back on.
 * The replica must be stopped: a running one would keep applying its old
 * primary's stream. Throws a one-line reason when the file is not a replica's
 * or never finished its first snapshot. Returns the sequence it continues from.
 */
export function promoteReplica(db: Db): number {
  return db
    .transaction(() => {
      const applied = db
        .prepare<[], number>("SELECT applied_seq FROM replica_state WHERE id = 1")
        .pluck()
        .get();
      if (applied === undefined)
        throw new Error(
          "this database is not a replica's (it has no replica state): nothing to promote",
        );
      if (applied < 0)
        throw new Error("this replica never completed its first snapshot: it cannot be promoted");
      const known = db.prepare("SELECT 1 FROM sqlite_sequence WHERE name = 'changes'").get();
      if (known)
        db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'changes'").run(applied);
      else db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('changes', ?)").run(applied);
      db.prepare("DELETE FROM changes").run();
      db.prepare("DELETE FROM replica_state").run();
      return applied;
    })
    .immediate();
}
