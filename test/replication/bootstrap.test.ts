import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { decide } from "../helpers/admin.js";
import {
  appliedSequence,
  type Cluster,
  createCluster,
  type KeywardNode,
  keyRows,
  readDatabase,
  waitUntil,
} from "../helpers/cluster.js";

const READ = ["sources:read"];
const RETAIN = 5;

async function readiness(node: KeywardNode) {
  const response = await fetch(`http://127.0.0.1:${node.ports.http}/readyz`);
  const body = (await response.json()) as { checks: Record<string, string | undefined> };
  return { status: response.status, replication: body.checks.replication ?? "" };
}

describe("a replica that starts before its primary, with a primary that compacts its log", () => {
  let cluster: Cluster;
  let replica: KeywardNode;

  beforeAll(async () => {
    cluster = await createCluster({
      replicas: 1,
      primaryConfig: { replication: { retain_changes: RETAIN } },
    });
    replica = cluster.replicas[0] as KeywardNode;
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("answers 503 unavailable while it has no snapshot, then converges once the primary starts", async () => {
    expect(existsSync(replica.database)).toBe(false);
    // The primary's file already holds a key; the primary itself is not running.
    const db = openDatabase(cluster.primary.database);
    const early = new KeyRepository(db).create({ kind: "live", scopes: READ });
    db.close();

    await replica.start();
    // Several reconnect attempts fail meanwhile; the replica keeps refusing to decide.
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await decide(replica.check, early.secret)).toBe("unavailable");
      const ready = await readiness(replica);
      expect(ready.status).toBe(503);
      expect(ready.replication).toMatch(/no snapshot/);
      await sleep(150);
    }

    await cluster.primary.start();
    const made = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await waitUntil(
      "the replica to allow a key made on the primary",
      async () => (await decide(replica.check, made.secret)) === "allow",
      15_000,
      10,
    );
    expect(await decide(replica.check, early.secret)).toBe("allow");
    expect((await readiness(replica)).status).toBe(200);
    // The log line travels through a pipe and may arrive after the data does.
    await waitUntil(
      "the replica to log its snapshot",
      () => replica.logLines("snapshot applied").length > 0,
    );
    expect(replica.logLines("snapshot applied")).toHaveLength(1);
    await cluster.converged();
    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));
  });

  it("sends a snapshot to a replica that was away longer than the compacted log reaches", async () => {
    const survivor = await cluster.admin.createKey({ kind: "live", scopes: READ });
    const doomed = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await cluster.converged();
    await replica.stop();
    const away = appliedSequence(replica.database) as number;

    const missed = [];
    for (let i = 0; i < 2 * RETAIN; i++) {
      missed.push(await cluster.admin.createKey({ kind: "agent", name: `m${i}`, scopes: READ }));
    }
    await cluster.admin.revokeKey({ id: doomed.key?.id as string });
    const rotated = await cluster.admin.rotateKey({ id: survivor.key?.id as string });
    // Compaction runs every second on the primary: wait until the log no longer reaches back.
    await waitUntil(
      "the primary to compact its change log",
      () =>
        readDatabase(cluster.primary.database, (db) => {
          const oldest = db.prepare("SELECT min(seq) FROM changes").pluck().get() as number;
          return oldest > away + 1;
        }),
      5_000,
      100,
    );

    const snapshotsBefore = cluster.primary.logLines("replica needs a snapshot").length;
    await replica.start();
    await cluster.converged();
    await waitUntil(
      "the replica to log its snapshot",
      () => replica.logLines("snapshot applied").length > 0,
    );
    await waitUntil(
      "the primary to log the snapshot it sent",
      () => cluster.primary.logLines("replica needs a snapshot").length > snapshotsBefore,
    );
    const applied = replica.logLines("snapshot applied");
    expect(applied).toHaveLength(1);
    expect(cluster.primary.logLines("replica needs a snapshot")).toHaveLength(snapshotsBefore + 1);
    expect(cluster.primary.logLines("replica needs a snapshot").at(-1)?.from).toBe(away);

    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));
    expect(await decide(replica.check, doomed.secret)).toBe("key_revoked");
    expect(await decide(replica.check, survivor.secret)).toBe("invalid_token");
    expect(await decide(replica.check, rotated.secret)).toBe("allow");
    for (const key of missed) expect(await decide(replica.check, key.secret)).toBe("allow");
  });
});
