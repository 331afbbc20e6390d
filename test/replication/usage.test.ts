import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KeyUsageHour } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { decide } from "../helpers/admin.js";
import { keyward } from "../helpers/cli.js";
import { type Cluster, createCluster, type KeywardNode, waitUntil } from "../helpers/cluster.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";

const READ = ["sources:read"];

/** Allowed and denied-by-code totals over a key's hours. */
function totals(hours: readonly KeyUsageHour[]) {
  const denied: Record<string, number> = {};
  let allowed = 0;
  for (const hour of hours) {
    allowed += Number(hour.allowed);
    for (const [code, n] of Object.entries(hour.denied))
      denied[code] = (denied[code] ?? 0) + Number(n);
  }
  return { allowed, denied };
}

describe("key usage from three replicas and the primary's two Check workers reaching the primary", () => {
  let cluster: Cluster;
  let replicas: KeywardNode[];
  const usage = async (id: string) =>
    totals((await cluster.admin.getKeyUsage({ id, hours: 2 })).usage);

  beforeAll(async () => {
    const replicaConfig = { replication: { usage_interval: "1s" } };
    // A replica serves Check in one process; Check workers run on the primary.
    cluster = await createCluster({ replicas: 3, replicaConfig, primaryConfig: { workers: 2 } });
    replicas = [...cluster.replicas];
    await cluster.primary.start();
    await Promise.all(replicas.map((replica) => replica.start()));
    await cluster.converged();
  }, 60_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it("counts every allow and deny exactly once, with lastUsedAt from the replica that saw the last use", async () => {
    const [one, two, three] = replicas as [KeywardNode, KeywardNode, KeywardNode];
    const a = await cluster.admin.createKey({ kind: "live", scopes: READ });
    const b = await cluster.admin.createKey({ kind: "live", scopes: READ });
    const c = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await cluster.admin.revokeKey({ id: c.key?.id as string });
    await cluster.converged();

    for (let i = 0; i < 3; i++) expect(await decide(one.check, a.secret)).toBe("allow");
    for (let i = 0; i < 2; i++) expect(await decide(two.check, a.secret)).toBe("allow");
    expect(await decide(two.check, a.secret, "/api/v1/sources", "POST")).toBe("insufficient_scope");
    expect(await decide(three.check, a.secret)).toBe("allow");
    // Each new connection goes to the next Check worker: both workers see use.
    for (let i = 0; i < 4; i++) {
      const client = new EnvoyCheckClient(cluster.primary.ports.check, { ownConnection: true });
      expect(await decide(client, a.secret)).toBe("allow");
      client.close();
    }
    for (let i = 0; i < 2; i++) expect(await decide(one.check, c.secret)).toBe("key_revoked");
    expect(await decide(one.check, b.secret)).toBe("allow");
    const lastUseFrom = Date.now();
    expect(await decide(two.check, b.secret)).toBe("allow");
    const lastUseTo = Date.now();

    const expected = { allowed: 10, denied: { insufficient_scope: 1 } };
    await waitUntil(
      "the primary to count every use of key a",
      async () => {
        const seen = await usage(a.key?.id as string);
        return seen.allowed >= expected.allowed;
      },
      20_000,
    );
    await waitUntil(
      "the primary to count key b and c",
      async () =>
        (await usage(b.key?.id as string)).allowed === 2 &&
        (await usage(c.key?.id as string)).denied.key_revoked === 2,
      20_000,
    );

    // A quiet interval proven by work, not time: a later use on every replica
    // reaches the primary, so every earlier report has been merged too.
    const d = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await cluster.converged();
    for (const replica of replicas) expect(await decide(replica.check, d.secret)).toBe("allow");
    await waitUntil(
      "a later use on every replica to arrive",
      async () => (await usage(d.key?.id as string)).allowed === 3,
      20_000,
    );
    expect(await usage(a.key?.id as string)).toEqual(expected);
    expect(await usage(b.key?.id as string)).toEqual({ allowed: 2, denied: {} });
    expect(await usage(c.key?.id as string)).toEqual({ allowed: 0, denied: { key_revoked: 2 } });

    const seen = await cluster.admin.getKey({ id: b.key?.id as string });
    const lastUsedAt = timestampMs(seen.key?.lastUsedAt ?? ({ seconds: 0n, nanos: 0 } as never));
    expect(lastUsedAt).toBeGreaterThanOrEqual(lastUseFrom);
    expect(lastUsedAt).toBeLessThanOrEqual(lastUseTo);

    // The same series over REST and the CLI (remote backend) and on the file (local backend).
    const answer = await fetch(`${cluster.primaryUrl}/v1/admin/keys/${a.key?.id}/usage?hours=24`, {
      headers: { authorization: `Bearer ${cluster.rootToken}` },
    });
    expect(answer.status).toBe(200);
    const hours = ((await answer.json()) as { usage: unknown }).usage as {
      hour: string;
      allowed: number;
      denied: Record<string, number>;
    }[];
    expect(hours.reduce((sum, h) => sum + h.allowed, 0)).toBe(10);
    expect(hours[0]?.hour).toMatch(/^\d{4}-\d\d-\d\dT\d\d:00:00\.000Z$/);
    const remote = keyward([
      "keys",
      "usage",
      a.key?.id as string,
      "--server",
      cluster.primaryUrl,
      "--token",
      cluster.rootToken,
      "--json",
    ]);
    expect(remote.code).toBe(0);
    expect(JSON.parse(remote.stdout)).toEqual({ usage: hours });
    const local = keyward([
      "keys",
      "usage",
      a.key?.id as string,
      "--db",
      cluster.primary.database,
      "--json",
    ]);
    expect(local.code).toBe(0);
    expect(JSON.parse(local.stdout)).toEqual({ usage: hours });
  }, 120_000);

  it("keeps a replica serving while the primary is away, and reports its use once it is back", async () => {
    const [one] = replicas as [KeywardNode];
    const e = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await cluster.converged();
    await cluster.primary.stop();
    for (let i = 0; i < 5; i++) expect(await decide(one.check, e.secret)).toBe("allow");
    await waitUntil(
      "a usage report to fail",
      () => one.logLines("usage report failed; it is sent again next interval").length > 0,
    );
    await cluster.primary.start();
    await waitUntil(
      "the use made meanwhile to arrive",
      async () => (await usage(e.key?.id as string)).allowed === 5,
      20_000,
    );
    expect(await usage(e.key?.id as string)).toEqual({ allowed: 5, denied: {} });
    const metrics = await (await fetch(`http://127.0.0.1:${one.ports.http}/metrics`)).text();
    const sample = (name: string) =>
      Number(metrics.match(new RegExp(`^${name} (\\d+)$`, "m"))?.[1]);
    expect(sample("keyward_usage_reports_failed_total")).toBeGreaterThan(0);
    expect(sample("keyward_usage_reports_sent_total")).toBeGreaterThan(0);
    expect(sample("keyward_usage_dropped_total")).toBe(0);
  }, 120_000);
});
