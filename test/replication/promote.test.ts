import { createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { decide } from "../helpers/admin.js";
import { keyward } from "../helpers/cli.js";
import {
  appliedSequence,
  type Cluster,
  createCluster,
  KeywardNode,
  keyRows,
  newestSequence,
  waitUntil,
} from "../helpers/cluster.js";
import { freePort } from "../helpers/net.js";

const READ = ["sources:read"];

describe("replacing a lost primary (replication.sync_replicas: 1)", () => {
  let cluster: Cluster;
  const extra: KeywardNode[] = [];

  beforeAll(async () => {
    cluster = await createCluster({
      replicas: 2,
      primaryConfig: { replication: { sync_replicas: 1 } },
    });
    await cluster.primary.start();
    await Promise.all(cluster.replicas.map((replica) => replica.start()));
    await cluster.converged();
  }, 60_000);
  afterAll(async () => {
    await Promise.allSettled(extra.map((node) => node.stop()));
    await cluster?.close();
  });

  it("keeps a revocation acknowledged just before the primary was killed, and the other replica resumes against the promoted one", async () => {
    const kept = await cluster.admin.createKey({ kind: "live", scopes: READ });
    const doomed = await cluster.admin.createKey({ kind: "live", scopes: READ });
    await cluster.admin.revokeKey({ id: doomed.key?.id as string });
    // Acknowledged: at least one replica applied it. The primary dies at once.
    const revokedAt = newestSequence(cluster.primary.database);
    await cluster.primary.stop("SIGKILL");
    expect(
      Math.max(...cluster.replicas.map((replica) => appliedSequence(replica.database) ?? 0)),
    ).toBeGreaterThanOrEqual(revokedAt);
    await Promise.all(cluster.replicas.map((replica) => replica.stop()));

    // README's procedure: promote the replica with the highest applied sequence.
    const [chosen, other] = [...cluster.replicas].sort(
      (a, b) => (appliedSequence(b.database) ?? 0) - (appliedSequence(a.database) ?? 0),
    ) as [KeywardNode, KeywardNode];
    const from = appliedSequence(chosen.database) as number;
    const promoted = keyward(["promote", "--db", chosen.database]);
    expect(promoted.code).toBe(0);
    expect(promoted.stdout).toContain(`after sequence ${from}`);
    expect(keyward(["promote", "--db", chosen.database]).code).toBe(1);

    const adminPort = await freePort();
    const common = {
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
      KEYWARD_LISTEN_HOST: "127.0.0.1",
      KEYWARD_REPLICATION_TOKEN: cluster.token,
    };
    const primary = new KeywardNode({
      name: "promoted",
      role: "primary",
      dir: cluster.dir,
      database: chosen.database,
      env: {
        ...common,
        KEYWARD_ROLE: "primary",
        KEYWARD_DATABASE: chosen.database,
        KEYWARD_ADMIN_PORT: String(adminPort),
      },
    });
    extra.push(primary);
    await primary.start();
    expect(await decide(primary.check, doomed.secret)).toBe("key_revoked");
    expect(await decide(primary.check, kept.secret)).toBe("allow");

    const resumed = new KeywardNode({
      name: "resumed",
      role: "replica",
      dir: cluster.dir,
      database: other.database,
      env: {
        ...common,
        KEYWARD_ROLE: "replica",
        KEYWARD_DATABASE: other.database,
        KEYWARD_ADMIN_PORT: "0",
        KEYWARD_REPLICATION_PRIMARY: `http://127.0.0.1:${adminPort}`,
      },
    });
    extra.push(resumed);
    await resumed.start();

    // The sequence continues: the next change is from + 1, and reaches the resumed replica.
    const bearer: Interceptor = (next) => (req) => {
      req.header.set("authorization", `Bearer ${cluster.rootToken}`);
      return next(req);
    };
    const admin = createClient(
      KeyService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${adminPort}`, interceptors: [bearer] }),
    );
    const born = await admin.createKey({ kind: "live", scopes: READ });
    expect(newestSequence(primary.database)).toBe(from + 1);
    await waitUntil(
      "the resumed replica to apply the promoted primary's first change",
      () => appliedSequence(other.database) === from + 1,
    );
    expect(await decide(resumed.check, born.secret)).toBe("allow");
    expect(await decide(resumed.check, doomed.secret)).toBe("key_revoked");
    expect(keyRows(other.database)).toEqual(keyRows(primary.database));
  }, 120_000);
});
