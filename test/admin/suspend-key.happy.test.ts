import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, keyOf, rest, startAdminFixture } from "../helpers/admin.js";

describe("SuspendKey and ResumeKey", () => {
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

  it("suspends a key so Check answers 401 key_disabled, and resumes it to allow again", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    const id = keyOf(created).id;
    expect(await decide(f.check, created.secret)).toBe("allow");
    const before = Date.now();

    const suspended = keyOf(await root.suspendKey({ id }));
    expect(suspended).toMatchObject({ id, status: "suspended" });
    expect(suspended.suspendedAt && timestampMs(suspended.suspendedAt)).toBeGreaterThanOrEqual(
      before - 1_000,
    );
    const denied = await f.check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${created.secret}` },
    });
    expect(denied.status?.code).toBe(16);
    expect(denied.denied_response?.status?.code).toBe("Unauthorized");
    expect(JSON.parse(denied.denied_response?.body ?? "{}").error).toBe("key_disabled");
    expect(keyOf(await root.getKey({ id })).status).toBe("suspended");

    const resumed = keyOf(await root.resumeKey({ id }));
    expect(resumed.status).toBe("active");
    expect(resumed.suspendedAt).toBeUndefined();
    expect(await decide(f.check, created.secret)).toBe("allow");
  });

  it("treats suspending twice and resuming an active key as success", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "agent", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    expect(keyOf(await root.resumeKey({ id })).status).toBe("active");
    const first = keyOf(await root.suspendKey({ id }));
    const second = keyOf(await root.suspendKey({ id }));
    expect(second.suspendedAt).toEqual(first.suspendedAt);
    expect(await decide(f.check, created.secret)).toBe("key_disabled");
  });

  it("answers key_revoked once a suspended key is revoked, and key_expired for an expired one", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    await root.suspendKey({ id });
    expect(keyOf(await root.revokeKey({ id })).status).toBe("revoked");
    expect(await decide(f.check, created.secret)).toBe("key_revoked");

    const soon = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    await root.suspendKey({ id: keyOf(soon).id });
    db.prepare("UPDATE keys SET expires_at = ? WHERE id = ?").run(Date.now() - 1, keyOf(soon).id);
    expect(await decide(f.check, soon.secret)).toBe("key_expired");
    expect(keyOf(await root.getKey({ id: keyOf(soon).id })).status).toBe("expired");
  });

  it("lists suspended keys apart from active ones", async () => {
    const root = f.client(f.rootToken);
    const a = await root.createKey({ kind: "live", tenant: "listing", scopes: ["sources:read"] });
    const b = await root.createKey({ kind: "live", tenant: "listing", scopes: ["sources:read"] });
    await root.suspendKey({ id: keyOf(a).id });
    const ids = async (status: string) =>
      (await root.listKeys({ tenant: "listing", status })).keys.map((key) => key.id);
    expect(await ids("suspended")).toEqual([keyOf(a).id]);
    expect(await ids("active")).toEqual([keyOf(b).id]);
  });

  it("works over REST (POST …/suspend, POST …/resume, also under /api/v1) and over gRPC", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    const suspended = await rest(f, "POST", `/v1/admin/keys/${id}/suspend`, { token: f.rootToken });
    expect(suspended.status).toBe(200);
    expect(suspended.body.key).toMatchObject({ id, status: "suspended" });
    expect(await decide(f.check, created.secret)).toBe("key_disabled");
    const resumed = await rest(f, "POST", `/api/v1/admin/keys/${id}/resume`, {
      token: f.rootToken,
    });
    expect(resumed.body.key).toMatchObject({ id, status: "active", suspendedAt: null });
    expect(await decide(f.check, created.secret)).toBe("allow");

    await f.grpcClient(f.rootToken).suspendKey({ id });
    expect(await decide(f.check, created.secret)).toBe("key_disabled");
  });

  it("audits both with actor, key id and tenant", async () => {
    const admin = f.client(await f.adminJwt("audited"));
    const created = await admin.createKey({ scopes: ["sources:read"] });
    const id = keyOf(created).id;
    await admin.suspendKey({ id });
    await admin.resumeKey({ id });
    expect(audit.list({ keyId: id }).map((row) => [row.action, row.tenant, row.outcome])).toEqual([
      ["ResumeKey", "audited", "ok"],
      ["SuspendKey", "audited", "ok"],
      ["CreateKey", "audited", "ok"],
    ]);
  });
});
