import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { type Cluster, createCluster, newestSequence, waitUntil } from "../helpers/cluster.js";
import { WatchClient } from "../helpers/watch-client.js";

const READ = ["sources:read"];
const REPLICAS = 200;

describe("one primary, 200 simulated replicas", () => {
  let cluster: Cluster;
  const clients: WatchClient[] = [];

  beforeAll(async () => {
    cluster = await createCluster({ replicas: 0 });
    await cluster.primary.start();
    for (let i = 0; i < 5; i++) await cluster.admin.createKey({ kind: "live", scopes: READ });
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await cluster?.close();
  });

  it("sends every replica every change in order, the same bytes to each, from one shared snapshot", async () => {
    for (let i = 0; i < REPLICAS; i++)
      clients.push(new WatchClient(cluster.primaryUrl, cluster.token));
    await waitUntil(
      "every simulated replica to hold a complete snapshot",
      () => clients.every((client) => client.snapshotSequence !== undefined),
      60_000,
    );

    // Changes of every kind while all 200 streams are live.
    const made = [];
    for (let i = 0; i < 10; i++)
      made.push(await cluster.admin.createKey({ kind: "live", scopes: READ }));
    for (const key of made.slice(0, 5))
      await cluster.admin.rotateKey({ id: key.key?.id as string });
    for (const key of made.slice(5)) await cluster.admin.revokeKey({ id: key.key?.id as string });
    const newest = newestSequence(cluster.primary.database);
    await waitUntil(
      "every simulated replica to receive the newest change",
      () => clients.every((client) => client.lastChange === newest),
      60_000,
    );

    const reference = clients[0] as WatchClient;
    const start = reference.snapshotSequence as number;
    expect(
      reference
        .changes()
        .map((r) => Number((r.message.event.value as { sequence: bigint }).sequence)),
    ).toEqual(Array.from({ length: newest - start }, (_, i) => start + 1 + i));
    const snapshotBytes = (client: WatchClient) =>
      client.received.filter((r) => r.message.event.case === "snapshot").map((r) => r.bytes);
    for (const client of clients) {
      expect(client.snapshotSequence).toBe(start);
      expect(
        Buffer.concat(snapshotBytes(client)).equals(Buffer.concat(snapshotBytes(reference))),
      ).toBe(true);
      const changes = client.changes();
      expect(changes).toHaveLength(newest - start);
      changes.forEach((change, i) => {
        expect(change.bytes.equals(reference.changes()[i]?.bytes as Buffer)).toBe(true);
      });
    }
    // One read and encode of the key table served all 200 of them.
    expect(cluster.primary.logLines("snapshot built for sharing")).toHaveLength(1);
    expect(cluster.primary.logLines("replica needs a snapshot")).toHaveLength(REPLICAS);
  }, 120_000);

  it("lets a replica that stops reading fall behind without delaying another, then catch up in order", async () => {
    for (const client of clients.splice(0)) client.close();
    const reader = new WatchClient(cluster.primaryUrl, cluster.token);
    const stalled = new WatchClient(cluster.primaryUrl, cluster.token);
    clients.push(reader, stalled);
    await waitUntil(
      "both snapshots",
      () => reader.snapshotSequence !== undefined && stalled.snapshotSequence !== undefined,
    );
    const before = stalled.lastChange || (stalled.snapshotSequence as number);
    stalled.pause();
    // More changes than the primary keeps encoded in memory (10,000), written
    // on the file as the CLI would: the primary's feed notices the commit.
    const db = openDatabase(cluster.primary.database);
    const store = new KeyRepository(db);
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++)
        store.create({ kind: "live", name: `bulk ${i}`, scopes: READ });
    })();
    db.close();
    const newest = newestSequence(cluster.primary.database);
    await waitUntil(
      "the reader to receive every change",
      () => reader.lastChange === newest,
      120_000,
    );
    // The stalled stream holds at most what its HTTP/2 window took.
    expect(stalled.lastChange).toBeLessThan(newest);

    stalled.resume();
    await waitUntil(
      "the stalled replica to catch up",
      () => stalled.lastChange === newest,
      120_000,
    );
    for (const client of [reader, stalled]) {
      const sequences = client
        .changes()
        .map((r) => Number((r.message.event.value as { sequence: bigint }).sequence))
        .filter((sequence) => sequence > before);
      expect(sequences).toEqual(Array.from({ length: newest - before }, (_, i) => before + 1 + i));
    }
    expect(stalled.received.filter((r) => r.message.event.case === "snapshot")).toHaveLength(1);
  }, 240_000);
});

describe("a snapshot storm with replication.max_concurrent_snapshots: 1", () => {
  let cluster: Cluster;
  const clients: WatchClient[] = [];

  beforeAll(async () => {
    cluster = await createCluster({
      replicas: 0,
      primaryConfig: { replication: { max_concurrent_snapshots: 1 } },
    });
    // A table whose snapshot is larger than one HTTP/2 window (64 KiB).
    const db = openDatabase(cluster.primary.database);
    const store = new KeyRepository(db);
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) store.create({ kind: "live", name: `k${i}`, scopes: READ });
    })();
    db.close();
    await cluster.primary.start();
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await cluster?.close();
  });

  it("keeps a waiting replica alive with heartbeats and the admin API answering until its turn", async () => {
    const first = new WatchClient(cluster.primaryUrl, cluster.token);
    first.pause(); // holds the only snapshot slot, part-way through
    clients.push(first);
    await waitUntil(
      "the first replica's snapshot to start",
      () => cluster.primary.logLines("replica needs a snapshot").length === 1,
    );
    const second = new WatchClient(cluster.primaryUrl, cluster.token);
    clients.push(second);
    await waitUntil(
      "two heartbeats to the waiting replica",
      () => second.received.filter((r) => r.message.event.case === "heartbeat").length >= 2,
    );
    expect(second.received.some((r) => r.message.event.case === "snapshot")).toBe(false);
    const created = await cluster.admin.createKey({ kind: "live", scopes: READ });
    expect(created.secret).toMatch(/^sk_live_/);

    first.resume();
    const newest = newestSequence(cluster.primary.database);
    await waitUntil("both replicas to hold a snapshot and the new key", () =>
      [first, second].every(
        (c) =>
          c.snapshotSequence !== undefined && Math.max(c.lastChange, c.snapshotSequence) === newest,
      ),
    );
  }, 60_000);
});
