import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { ROLE_NODE_OPTIONS } from "../../src/lib/heap-tuning.js";
import { decide, refusal } from "../helpers/admin.js";
import { type Cluster, createCluster, type KeywardNode, waitUntil } from "../helpers/cluster.js";

/** What only the admin API, the primary's side or tracing need: a replica must not load them. */
const NOT_ON_A_REPLICA = [
  "/dist/app/admin-api.js",
  "/dist/admin/server.js",
  "/dist/admin/key-service.js",
  "/dist/admin/rest.js",
  "/dist/reflection/routes.js",
  "/dist/replication/primary.js",
  "/dist/workers/pool.js",
  "/@opentelemetry/sdk-trace-base/",
];

describe("a replica sidecar loads only what its role uses", () => {
  const traces = mkdtempSync(join(tmpdir(), "keyward-modules-"));
  let cluster: Cluster;
  let replica: KeywardNode;
  const loaded = (role: string) =>
    readFileSync(join(traces, `${role}.txt`), "utf8")
      .split("\n")
      .filter(Boolean);

  beforeAll(async () => {
    cluster = await createCluster({
      replicas: 1,
      env: {
        // Each process records the modules it loads (test/helpers/module-trace.mjs).
        // Every process gets the replica's V8 sizing (the primary too, harmlessly).
        NODE_OPTIONS: `${ROLE_NODE_OPTIONS.replica} --import=${pathToFileURL(resolve("test/helpers/module-trace.mjs")).href}`,
        KEYWARD_TEST_MODULE_LOG: traces,
      },
    });
    replica = cluster.replicas[0] as KeywardNode;
    await cluster.primary.start();
    await replica.start();
    await cluster.converged();
  });
  afterAll(async () => {
    await cluster?.close();
    rmSync(traces, { recursive: true, force: true });
  });

  it("never evaluates the admin API, reflection routes, the primary's feed or the tracing SDK", () => {
    const modules = loaded("replica");
    // The trace sees the replica's own parts, so an absence below is real.
    expect(modules.some((url) => url.endsWith("/dist/replication/replica.js"))).toBe(true);
    for (const part of NOT_ON_A_REPLICA) {
      expect(modules.filter((url) => url.includes(part))).toEqual([]);
    }
    // The same trace on the primary does see its admin API (and no replica sync).
    const primary = loaded("primary");
    expect(primary.some((url) => url.endsWith("/dist/admin/server.js"))).toBe(true);
    expect(primary.some((url) => url.endsWith("/dist/app/replica-side.js"))).toBe(false);
  });

  it('names the parts it loaded and its V8 sizing in its "keyward started" line', () => {
    const started = replica.logLines("keyward started")[0];
    expect(started?.heap).toMatchObject({ semiSpaceMb: 1, growingPercent: 50, by: "keyward" });
    expect(cluster.primary.logLines("keyward started")[0]?.heap).toMatchObject({
      growingPercent: 100,
    });
    // Started with its sizing, the replica does not warn about it.
    expect(replica.logs()).not.toContain("without its V8 sizing");
    expect(started?.parts).toEqual([
      "check",
      "http",
      "replica sync",
      "usage reporter",
      "admin refusal",
    ]);
    expect(cluster.primary.logLines("keyward started")[0]?.parts).toEqual([
      "check",
      "http",
      "admin API",
      "replication primary",
      "console",
    ]);
  });

  it("still refuses admin calls over gRPC and REST, naming its primary", async () => {
    const admin = `http://127.0.0.1:${replica.ports.admin}`;
    const client = createClient(KeyService, createGrpcTransport({ baseUrl: admin }));
    const error = await refusal(
      client.listKeys({}, { headers: { authorization: `Bearer ${cluster.rootToken}` } }),
    );
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toBe(
      `this keyward is a replica; send admin calls to the primary at ${cluster.primaryUrl}`,
    );

    const rest = await fetch(`${admin}/v1/admin/keys`, {
      headers: { authorization: `Bearer ${cluster.rootToken}` },
    });
    expect(rest.status).toBe(409);
    expect(await rest.json()).toEqual({
      error: "failed_precondition",
      message: `this keyward is a replica; send admin calls to the primary at ${cluster.primaryUrl}`,
    });
    expect((await fetch(`${admin}/no/such/route`)).status).toBe(404);
  });

  it("still decides with what its primary streams", async () => {
    const created = await cluster.admin.createKey({ kind: "live", scopes: ["sources:read"] });
    await waitUntil(
      "the replica to allow a key minted on the primary",
      async () => (await decide(replica.check, created.secret)) === "allow",
    );
    await cluster.admin.revokeKey({ id: created.key?.id as string });
    await waitUntil(
      "the replica to deny the revoked key",
      async () => (await decide(replica.check, created.secret)) === "key_revoked",
    );
  });
});
