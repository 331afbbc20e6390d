import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { type AdminFixture, decide, keyOf, startAdminFixture } from "../helpers/admin.js";

describe("RevokeKey", () => {
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

  it("revokes a key so every later Check answers 401 key_revoked", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    expect(await decide(f.check, created.secret)).toBe("allow");
    const before = Date.now();

    const revoked = keyOf(await root.revokeKey({ id: keyOf(created).id }));
    expect(revoked).toMatchObject({ id: keyOf(created).id, status: "revoked", tenant: "acme" });
    expect(revoked.revokedAt && timestampMs(revoked.revokedAt)).toBeGreaterThanOrEqual(
      before - 1_000,
    );
    for (const path of ["/api/v1/sources", "/api/v1/sources/s1"]) {
      expect(await decide(f.check, created.secret, path)).toBe("key_revoked");
    }
    expect(keyOf(await root.getKey({ id: revoked.id })).status).toBe("revoked");
  });

  it("treats revoking twice as success, keeping the first revocation time", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "agent", scopes: ["sources:read"] });
    const first = keyOf(await root.revokeKey({ id: keyOf(created).id }));
    const second = keyOf(await root.revokeKey({ id: keyOf(created).id }));
    expect(second.status).toBe("revoked");
    expect(second.revokedAt).toEqual(first.revokedAt);
    expect(await decide(f.check, created.secret)).toBe("key_revoked");
  });

  it("answers key_revoked rather than key_expired for a key that is both", async () => {
    const root = f.client(f.rootToken);
    // The admin API refuses an expiry already past; the row is written as a
    // key whose expiry has since passed would be.
    const created = new KeyRepository(db).create({
      kind: "live",
      scopes: ["sources:read"],
      expiresAt: Date.now() - 1_000,
    });
    expect(await decide(f.check, created.secret)).toBe("key_expired");
    expect(keyOf(await root.revokeKey({ id: created.key.id })).status).toBe("revoked");
    expect(await decide(f.check, created.secret)).toBe("key_revoked");
  });

  it("lets a tenant admin, a researcher and a provisioner revoke the keys they manage", async () => {
    const admin = f.client(await f.adminJwt("acme"));
    const live = await admin.createKey({ scopes: ["sources:read"] });
    await admin.revokeKey({ id: keyOf(live).id });
    expect(await decide(f.check, live.secret)).toBe("key_revoked");

    const researcher = f.client(await f.researcherJwt("auth0|ada"));
    const user = await researcher.createKey({ scopes: ["sources:read"] });
    await researcher.revokeKey({ id: keyOf(user).id });
    expect(await decide(f.check, user.secret)).toBe("key_revoked");

    const provisioner = await f
      .client(f.rootToken)
      .createKey({ kind: "live", tenant: "acme", scopes: ["keys:provision"] });
    const run = { experiment: "e1", variation: "1", run: "r1" };
    const worker = await f.client(provisioner.secret).createKey({ kind: "worker", binding: run });
    await f.client(provisioner.secret).revokeKey({ id: keyOf(worker).id });
    expect(await decide(f.check, worker.secret, "/experiments/e1/variations/1/runs/r1")).toBe(
      "key_revoked",
    );
  });

  it("revokes only the key it names", async () => {
    const root = f.client(f.rootToken);
    const a = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const b = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    await root.revokeKey({ id: keyOf(a).id });
    expect(await decide(f.check, a.secret)).toBe("key_revoked");
    expect(await decide(f.check, b.secret)).toBe("allow");
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const revoked = await f.grpcClient(f.rootToken).revokeKey({ id: keyOf(created).id });
    expect(keyOf(revoked).status).toBe("revoked");
    expect(await decide(f.check, created.secret)).toBe("key_revoked");
  });

  it("audits the revocation with actor, key id and tenant, and no secret", async () => {
    const admin = await f.adminJwt("audited");
    const created = await f.client(admin).createKey({ scopes: ["sources:read"] });
    await f.client(admin).revokeKey({ id: keyOf(created).id });
    expect(audit.list({ keyId: keyOf(created).id })[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|audited$/),
      action: "RevokeKey",
      keyId: keyOf(created).id,
      tenant: "audited",
      outcome: "ok",
    });
    expect(JSON.stringify(audit.list({}, 10_000))).not.toContain(created.secret.slice(-48));
  });
});
