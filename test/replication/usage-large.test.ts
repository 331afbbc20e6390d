import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { decide } from "../helpers/admin.js";
import { type Cluster, createCluster, readDatabase, waitUntil } from "../helpers/cluster.js";

const KEYS = 3000;

describe("a replica that saw more keys than one usage report holds", () => {
  let cluster: Cluster;
  const secrets: string[] = [];

  beforeAll(async () => {
    cluster = await createCluster({
      replicas: 1,
      // Nothing is reported before the replica stops: its last report holds every use.
      replicaConfig: { replication: { usage_interval: "1h" } },
    });
    const db = openDatabase(cluster.primary.database);
    const store = new KeyRepository(db);
    db.transaction(() => {
      for (let i = 0; i < KEYS; i++)
        secrets.push(
          store.create({ kind: "live", name: `k${i}`, scopes: ["sources:read"] }).secret,
        );
    })();
    db.close();
    await cluster.primary.start();
    await cluster.replicas[0]?.start();
    await cluster.converged();
  }, 60_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it("reports all of them in several reports under the admin port's body limit, each use counted once", async () => {
    const replica = cluster.replicas[0];
    if (!replica) throw new Error("no replica");
    // 3,000 keys in one tally: ~150 KB as one report, over the primary's
    // 64 KiB request limit, which refused such a report on every retry
    // (and at exit, for good).
    for (const secret of secrets) expect(await decide(replica.check, secret)).toBe("allow");
    const counted = () =>
      readDatabase(cluster.primary.database, (db) => ({
        keys: db
          .prepare("SELECT COUNT(DISTINCT key_id) FROM key_usage WHERE code = ''")
          .pluck()
          .get(),
        allowed: db.prepare("SELECT SUM(count) FROM key_usage WHERE code = ''").pluck().get(),
      }));
    // A graceful stop sends what is left in the tally before the process exits.
    await replica.stop();
    await waitUntil("the primary to count a use of every key", () => counted().keys === KEYS, 5000);
    expect(counted()).toEqual({ keys: KEYS, allowed: KEYS });
  }, 120_000);
});
