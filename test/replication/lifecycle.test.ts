import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import {
  type Cluster,
  createCluster,
  type KeywardNode,
  keyRows,
  waitUntil,
} from "../helpers/cluster.js";
import { structToJson } from "../helpers/envoy-client.js";

const READ = ["sources:read"];

/**
 * Waits until the replica answers `expected` for `token`, and returns how
 * long it took. The bound is generous (a loaded machine); the figure is
 * printed, and DESIGN's one-second promise is asserted by cluster.test.ts
 * for the same change path.
 */
async function reflects(replica: KeywardNode, token: string, expected: string): Promise<number> {
  const since = performance.now();
  await waitUntil(
    `the replica to answer ${expected}`,
    async () => (await decide(replica.check, token)) === expected,
    10_000,
    5,
  );
  return performance.now() - since;
}

describe("the key lifecycle on a replica", () => {
  let cluster: Cluster;
  let replica: KeywardNode;

  beforeAll(async () => {
    cluster = await createCluster({ replicas: 1 });
    replica = cluster.replicas[0] as KeywardNode;
    await cluster.primary.start();
    await replica.start();
    await cluster.converged();
  });
  afterAll(async () => {
    await cluster?.close();
  });

  it("suspends and resumes a key on the replica's Check as on the primary's", async () => {
    const created = await cluster.admin.createKey({ kind: "live", scopes: READ });
    const id = created.key?.id as string;
    await reflects(replica, created.secret, "allow");

    await cluster.admin.suspendKey({ id });
    const suspendMs = await reflects(replica, created.secret, "key_disabled");
    await cluster.converged();
    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));

    await cluster.admin.resumeKey({ id });
    const resumeMs = await reflects(replica, created.secret, "allow");
    console.log(
      `suspend reached the replica's Check in ${suspendMs.toFixed(0)} ms, resume in ${resumeMs.toFixed(0)} ms`,
    );
  });

  it("carries metadata, allowed networks and updates to the replica's Check", async () => {
    const created = await cluster.admin.createKey({
      kind: "live",
      scopes: READ,
      metadata: { plan: "pro" },
      allowedCidrs: ["10.0.0.0/8"],
    });
    const id = created.key?.id as string;
    // No source address: a key bound to networks is refused.
    await reflects(replica, created.secret, "ip_not_allowed");
    await cluster.admin.updateKey({ id, name: "renamed", metadata: { plan: "team" } });
    await waitUntil("the replica to apply the update", async () => {
      const response = await replica.check.check({
        method: "GET",
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${created.secret}` },
        sourceAddress: "10.1.2.3",
      });
      if (response.status?.code !== 0) return false;
      const meta = structToJson(response.dynamic_metadata).meta as Parameters<
        typeof structToJson
      >[0];
      return structToJson(meta).plan === "team";
    });
    await cluster.converged();
    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));
  });

  it("enforces a key's rate limit on the replica, on the replica's own traffic", async () => {
    const created = await cluster.admin.createKey({
      kind: "live",
      scopes: READ,
      rateLimit: { requests: 2, perSeconds: 3600, burst: 0 },
    });
    await reflects(replica, created.secret, "allow");
    expect(await decide(replica.check, created.secret)).toBe("allow");
    expect(await decide(replica.check, created.secret)).toBe("rate_limited");
    // The primary counts its own traffic.
    expect(await decide(cluster.primary.check, created.secret)).toBe("allow");
    await cluster.converged();
    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));
  });

  it("honours a rotation grace on the replica, and ends it there with the next rotation", async () => {
    const created = await cluster.admin.createKey({ kind: "live", scopes: READ });
    const id = created.key?.id as string;
    await reflects(replica, created.secret, "allow");
    const rotated = await cluster.admin.rotateKey({ id, graceSeconds: 600 });
    const graceMs = await reflects(replica, rotated.secret, "allow");
    expect(await decide(replica.check, created.secret)).toBe("allow");
    await cluster.converged();
    expect(keyRows(replica.database)).toEqual(keyRows(cluster.primary.database));

    await cluster.admin.rotateKey({ id });
    const endMs = await reflects(replica, created.secret, "invalid_token");
    await reflects(replica, rotated.secret, "invalid_token");
    console.log(
      `a graced rotation reached the replica's Check in ${graceMs.toFixed(0)} ms, its end in ${endMs.toFixed(0)} ms`,
    );
  });
});
