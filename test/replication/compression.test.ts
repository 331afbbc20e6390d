import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import {
  type Cluster,
  createCluster,
  keyRows,
  newestSequence,
  waitUntil,
} from "../helpers/cluster.js";
import { type Received, WatchClient } from "../helpers/watch-client.js";

const READ = ["sources:read"];
const KEYS = 3000;

const snapshotOf = (client: WatchClient): Received[] =>
  client.received.filter((r) => r.message.event.case === "snapshot");

describe("snapshots compressed by gRPC message compression, negotiated by grpc-accept-encoding", () => {
  let cluster: Cluster;
  const clients: WatchClient[] = [];

  beforeAll(async () => {
    cluster = await createCluster({ replicas: 1 });
    const db = openDatabase(cluster.primary.database);
    const store = new KeyRepository(db);
    db.transaction(() => {
      for (let i = 0; i < KEYS; i++) store.create({ kind: "live", name: `k${i}`, scopes: READ });
    })();
    db.close();
    await cluster.primary.start();
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.close();
    await cluster?.close();
  });

  it("sends gzip to a replica that accepts it and plain to one that does not, the same messages", async () => {
    const plain = new WatchClient(cluster.primaryUrl, cluster.token);
    const gzip = new WatchClient(cluster.primaryUrl, cluster.token, 0, {
      acceptEncoding: "gzip, br",
    });
    const brotliOnly = new WatchClient(cluster.primaryUrl, cluster.token, 0, {
      acceptEncoding: "br",
    });
    clients.push(plain, gzip, brotliOnly);
    await waitUntil("three snapshots", () =>
      clients.every((client) => client.snapshotSequence !== undefined),
    );

    expect(gzip.headers?.["grpc-encoding"]).toBe("gzip");
    expect(plain.headers?.["grpc-encoding"]).toBeUndefined();
    expect(brotliOnly.headers?.["grpc-encoding"]).toBeUndefined();
    expect(snapshotOf(gzip).every((r) => r.compressed)).toBe(true);
    for (const client of [plain, brotliOnly])
      expect(client.received.some((r) => r.compressed)).toBe(false);
    // Inflated, the compressed chunks are the plain chunks byte for byte.
    const bytes = (client: WatchClient) => Buffer.concat(snapshotOf(client).map((r) => r.bytes));
    expect(bytes(gzip).equals(bytes(plain))).toBe(true);
    expect(bytes(brotliOnly).equals(bytes(plain))).toBe(true);
    const rows = snapshotOf(plain).flatMap((r) =>
      r.message.event.case === "snapshot" ? r.message.event.value.rows : [],
    );
    expect(rows).toHaveLength(KEYS + 1); // and the cluster's root key
    // What went over the wire: under half.
    expect(gzip.bytes).toBeLessThan(plain.bytes / 2);

    // Changes go plain to both, the same bytes.
    await cluster.admin.createKey({ kind: "live", scopes: READ });
    const newest = newestSequence(cluster.primary.database);
    await waitUntil("the change at both", () =>
      [plain, gzip].every((client) => client.lastChange === newest),
    );
    const [fromGzip] = gzip.changes().slice(-1);
    const [fromPlain] = plain.changes().slice(-1);
    expect(fromGzip?.compressed).toBe(false);
    expect(fromGzip?.bytes.equals(fromPlain?.bytes as Buffer)).toBe(true);
  }, 60_000);

  it("is applied by a real replica (its client accepts gzip) row by row equal to the primary", async () => {
    const replica = cluster.replicas[0];
    if (!replica) throw new Error("no replica");
    await replica.start();
    await cluster.converged();
    const [built] = cluster.primary.logLines("snapshot built for sharing");
    expect(Number(built?.gzipBytes)).toBeLessThan(Number(built?.bytes) / 2);
    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));
    expect(keyRows(replica.database)).toHaveLength(KEYS + 2);
  }, 60_000);
});
