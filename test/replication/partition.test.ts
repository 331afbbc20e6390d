import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import {
  type Cluster,
  createCluster,
  type KeywardNode,
  type SilentRelay,
  startSilentRelay,
  waitUntil,
} from "../helpers/cluster.js";

const READ = ["sources:read"];

describe("a replica whose path to the primary goes silent without closing", () => {
  let cluster: Cluster;
  let relay: SilentRelay;
  let replica: KeywardNode;

  beforeAll(async () => {
    cluster = await createCluster({ replicas: 0 });
    // The primary binds its port (picked free by createCluster) before the
    // relay asks for any port, so the relay cannot be handed the same one.
    await cluster.primary.start();
    relay = await startSilentRelay(Number(new URL(cluster.primaryUrl).port));
    replica = cluster.addReplica("replica-behind-relay", relay.url);
    await replica.start();
    await cluster.converged();
  });
  afterAll(async () => {
    await relay?.close();
    await cluster?.close();
  });

  it("notices the missing heartbeats, reconnects and receives the changes made meanwhile", async () => {
    const key = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await waitUntil("the replica to allow the key", async () => {
      return (await decide(replica.check, key.secret)) === "allow";
    });
    expect(relay.accepted).toBe(1);

    // The primary sends a heartbeat every second; after a few missed ones the
    // replica should treat the stream as lost and open a new one.
    relay.partition();
    await cluster.admin.revokeKey({ id: key.key?.id as string });
    await waitUntil(
      "the replica to reconnect and apply the revocation",
      async () => (await decide(replica.check, key.secret)) === "key_revoked",
      8_000,
      50,
    );
    expect(relay.accepted).toBeGreaterThan(1);
  });
});
