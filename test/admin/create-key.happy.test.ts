import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Key } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";

const DAY_MS = 86_400_000;
const RUN = { experiment: "exp-1", variation: "2", run: "r-7" };
const RUN_PATH = "/experiments/exp-1/variations/2/runs/r-7";

/** The key in a create answer; fails the test when it is missing. */
function keyOf(response: { key?: Key | undefined }): Key {
  if (!response.key) throw new Error("response has no key");
  return response.key;
}

/** What every minted key promises: its lookup, id and secret agree and have the DESIGN format. */
function expectMinted(key: Key, secret: string, kind: string): void {
  expect(key.id).toMatch(/^[0-9a-f]{16}$/);
  expect(key.keyLookup).toBe(`sk_${kind}_${key.id}`);
  expect(key.kind).toBe(kind);
  expect(key.status).toBe("active");
  expect(secret).toMatch(new RegExp(`^${key.keyLookup}_[0-9a-f]{48}$`));
}

describe("CreateKey", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  it("lets keys:admin mint every kind, each answering with its secret once and passing Check", async () => {
    const root = f.client(f.rootToken);
    for (const kind of ["live", "user", "agent"]) {
      const created = await root.createKey({
        kind,
        name: `${kind} key`,
        tenant: "acme",
        scopes: ["sources:read"],
      });
      const key = keyOf(created);
      expectMinted(key, created.secret, kind);
      expect(key).toMatchObject({ name: `${kind} key`, tenant: "acme", scopes: ["sources:read"] });
      expect(await decide(f.check, created.secret)).toBe("allow");
    }
    const worker = await root.createKey({ kind: "worker", tenant: "acme", binding: RUN });
    expectMinted(keyOf(worker), worker.secret, "worker");
    expect(keyOf(worker).binding).toMatchObject(RUN);
    expect(await decide(f.check, worker.secret, RUN_PATH)).toBe("allow");
  });

  it("lets a tenant admin mint live keys (the default) and agent keys in its own tenant", async () => {
    const admin = f.client(await f.adminJwt("acme"));
    const live = await admin.createKey({ name: "CI importer", scopes: ["sources:read"] });
    expectMinted(keyOf(live), live.secret, "live");
    expect(keyOf(live)).toMatchObject({ tenant: "acme", owner: "admin|acme" });
    expect(keyOf(live).binding).toBeUndefined();
    expect(await decide(f.check, live.secret)).toBe("allow");

    const agent = await admin.createKey({ kind: "agent", scopes: ["sources:read", "runs:read"] });
    expectMinted(keyOf(agent), agent.secret, "agent");
    expect(keyOf(agent)).toMatchObject({ tenant: "acme", scopes: ["sources:read", "runs:read"] });
    expect(await decide(f.check, agent.secret, "/api/v1/sources/s1/runs")).toBe("allow");
  });

  it("lets a researcher mint user keys (the default) and agent keys owned by itself", async () => {
    const researcher = f.client(await f.researcherJwt("auth0|ada"));
    const user = await researcher.createKey({ name: "laptop", scopes: ["sources:read"] });
    expectMinted(keyOf(user), user.secret, "user");
    expect(keyOf(user)).toMatchObject({ owner: "auth0|ada", scopes: ["sources:read"] });
    expect(await decide(f.check, user.secret)).toBe("allow");

    const agent = await researcher.createKey({ kind: "agent", scopes: ["runs:execute"] });
    expectMinted(keyOf(agent), agent.secret, "agent");
    expect(keyOf(agent).owner).toBe("auth0|ada");
    expect(await decide(f.check, agent.secret, "/api/v1/sources/s1/runs", "POST")).toBe("allow");
  });

  it("lets a keys:provision key mint worker keys bound to a run, valid on that run only", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      name: "provisioner",
      scopes: ["keys:provision", "runs:read"],
    });
    const worker = await f.client(provisioner.secret).createKey({
      kind: "worker",
      scopes: ["runs:read"],
      binding: RUN,
    });
    expectMinted(keyOf(worker), worker.secret, "worker");
    expect(keyOf(worker)).toMatchObject({ tenant: "acme", scopes: ["runs:read"], binding: RUN });
    expect(await decide(f.check, worker.secret, RUN_PATH)).toBe("allow");
    expect(await decide(f.check, worker.secret, `${RUN_PATH}/logs`, "POST")).toBe("allow");
    expect(await decide(f.check, worker.secret, "/experiments/exp-1/variations/2/runs/r-8")).toBe(
      "insufficient_scope",
    );
  });

  it("gives user and agent keys a 90-day lifetime by default, live and worker keys none", async () => {
    const root = f.client(f.rootToken);
    for (const kind of ["user", "agent"]) {
      const key = keyOf(await root.createKey({ kind, scopes: ["sources:read"] }));
      if (!key.createdAt || !key.expiresAt) throw new Error("createdAt and expiresAt expected");
      const lifetime = timestampMs(key.expiresAt) - timestampMs(key.createdAt);
      expect(Math.abs(lifetime - 90 * DAY_MS)).toBeLessThan(5_000);
    }
    expect(keyOf(await root.createKey({ kind: "live" })).expiresAt).toBeUndefined();
    expect(keyOf(await root.createKey({ kind: "worker", binding: RUN })).expiresAt).toBeUndefined();
  });

  it("keeps an explicit expiresAt to the millisecond, for every kind", async () => {
    const root = f.client(f.rootToken);
    const at = Date.now() + 2 * 3_600_000 + 123;
    for (const kind of ["live", "user"]) {
      const key = keyOf(await root.createKey({ kind, expiresAt: timestampFromMs(at) }));
      expect(key.expiresAt && timestampMs(key.expiresAt)).toBe(at);
    }
  });

  it("makes Check answer key_expired once an explicit expiresAt has passed", async () => {
    const expiresAt = Date.now() + 1_500;
    const created = await f.client(f.rootToken).createKey({
      kind: "live",
      scopes: ["sources:read"],
      expiresAt: timestampFromMs(expiresAt),
    });
    expect(await decide(f.check, created.secret)).toBe("allow");
    // Waits on the condition (the expiry passing), not on a fixed delay.
    while (Date.now() <= expiresAt) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await decide(f.check, created.secret)).toBe("key_expired");
    expect(keyOf(await f.client(f.rootToken).getKey({ id: keyOf(created).id })).status).toBe(
      "expired",
    );
  });

  it("answers a retried create with the same idempotency key with the same key and secret", async () => {
    const admin = f.client(await f.adminJwt("retry-co"));
    const request = { name: "retried", scopes: ["sources:read"], idempotencyKey: "create-42" };
    const first = await admin.createKey(request);
    // A retry may come with a freshly signed session token of the same admin.
    const second = await f.client(await f.adminJwt("retry-co")).createKey(request);
    expect(keyOf(second).id).toBe(keyOf(first).id);
    expect(second.secret).toBe(first.secret);
    const listed = await admin.listKeys({});
    expect(listed.keys.map((key) => key.id)).toEqual([keyOf(first).id]);
    expect(await decide(f.check, first.secret)).toBe("allow");
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const created = await f.grpcClient(f.rootToken).createKey({
      kind: "agent",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    expectMinted(keyOf(created), created.secret, "agent");
    expect(await decide(f.check, created.secret)).toBe("allow");
  });

  it("knows the policy's scopes, keys:admin and keys:provision", async () => {
    const root = f.client(f.rootToken);
    const scopes = ["sources:read", "runs:apply", "keys:provision"];
    expect(keyOf(await root.createKey({ kind: "live", scopes })).scopes).toEqual(scopes);
    expect(keyOf(await root.createKey({ kind: "live", scopes: ["keys:admin"] })).scopes).toEqual([
      "keys:admin",
    ]);
  });

  it("audits each create with actor, action, key id and tenant, and never the secret", async () => {
    const token = await f.adminJwt("audited");
    const created = await f.client(token).createKey({ name: "audited", scopes: ["sources:read"] });
    const rows = audit.list({ keyId: keyOf(created).id });
    expect(rows).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|audited$/),
        action: "CreateKey",
        keyId: keyOf(created).id,
        tenant: "audited",
        outcome: "ok",
      }),
    ]);
    const everything = JSON.stringify(audit.list({}, 10_000));
    expect(everything).not.toContain(created.secret.slice(-48));
    expect(everything).not.toMatch(/[0-9a-f]{48}/);
  });
});

describe("CreateKey's known scopes", () => {
  let f: AdminFixture;
  let dir: string;
  let policy: string;
  const rule = (scope: string) =>
    `rules:\n  - method: GET\n    path: /reports\n    scopes: [${scope}]\n`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-scopes-"));
    policy = join(dir, "policy.yaml");
    writeFileSync(policy, rule("reports:read"));
    f = await startAdminFixture({ policy, scopes: ["billing:export"] });
  });
  afterAll(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts the config's scopes: list beside the policy's scopes", async () => {
    const root = f.client(f.rootToken);
    const key = keyOf(await root.createKey({ kind: "live", scopes: ["billing:export"] }));
    expect(key.scopes).toEqual(["billing:export"]);
    expect(keyOf(await root.createKey({ kind: "live", scopes: ["reports:read"] })).scopes).toEqual([
      "reports:read",
    ]);
  });

  it("follows a policy reload: a scope the new policy names is known, one it dropped is not", async () => {
    const root = f.client(f.rootToken);
    writeFileSync(policy, rule("reports:write"));
    expect(await f.kw.keyward.reload()).toBe(true);
    expect(keyOf(await root.createKey({ kind: "live", scopes: ["reports:write"] })).scopes).toEqual(
      ["reports:write"],
    );
    const error = await refusal(root.createKey({ kind: "live", scopes: ["reports:read"] }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^scopes: "reports:read" is not a scope keyward knows/);
  });
});
