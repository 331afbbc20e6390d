import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { type AdminFixture, decide, keyOf, startAdminFixture } from "../helpers/admin.js";

describe("GetKey", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;

  /** The raw Connect JSON answer of an RPC, as curl would see it. */
  async function rawJson(method: string, body: unknown, token: string): Promise<string> {
    const response = await fetch(`${f.adminUrl}/keyward.admin.v1.KeyService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    return response.text();
  }

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  it("shows every field of a key as it was created", async () => {
    const expiresAt = Date.now() + 3_600_000;
    const binding = { experiment: "exp-9", variation: "3", run: "run-12" };
    const created = await f.client(f.rootToken).createKey({
      kind: "worker",
      name: "run-12 worker",
      tenant: "acme",
      owner: "provisioner",
      scopes: ["runs:read", "runs:execute"],
      binding,
      expiresAt: timestampFromMs(expiresAt),
    });
    const key = keyOf(await f.client(f.rootToken).getKey({ id: keyOf(created).id }));
    expect(key).toEqual(keyOf(created));
    expect(key).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f]{16}$/),
      keyLookup: `sk_worker_${key.id}`,
      kind: "worker",
      name: "run-12 worker",
      tenant: "acme",
      owner: "provisioner",
      scopes: ["runs:read", "runs:execute"],
      binding,
      status: "active",
    });
    expect(key.expiresAt && timestampMs(key.expiresAt)).toBe(expiresAt);
    expect(Math.abs(timestampMs(key.createdAt ?? timestampFromMs(0)) - Date.now())).toBeLessThan(
      10_000,
    );
    expect(key.lastUsedAt).toBeUndefined();
    expect(key.revokedAt).toBeUndefined();
  });

  it("never returns the secret, neither after creation nor after rotation", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    const id = keyOf(created).id;
    const json = await rawJson("GetKey", { id }, f.rootToken);
    expect(JSON.parse(json)).toMatchObject({ key: { id, keyLookup: `sk_live_${id}` } });
    expect(json).not.toContain(created.secret.slice(-48));
    expect(json).not.toMatch(/[0-9a-f]{48}/);

    const rotated = await root.rotateKey({ id });
    const afterRotation = await rawJson("GetKey", { id }, f.rootToken);
    expect(afterRotation).not.toContain(rotated.secret.slice(-48));
    expect(afterRotation).not.toMatch(/[0-9a-f]{48}/);
  });

  it("shows lastUsedAt once a Check has used the key (flushed within a few seconds)", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    const usedAt = Date.now();
    expect(await decide(f.check, created.secret)).toBe("allow");
    const deadline = Date.now() + 8_000;
    let key = keyOf(await f.client(f.rootToken).getKey({ id }));
    while (!key.lastUsedAt && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      key = keyOf(await f.client(f.rootToken).getKey({ id }));
    }
    if (!key.lastUsedAt) throw new Error("lastUsedAt was not recorded within 8 s");
    expect(timestampMs(key.lastUsedAt)).toBeGreaterThanOrEqual(usedAt - 1_000);
    expect(timestampMs(key.lastUsedAt)).toBeLessThanOrEqual(Date.now());
  });

  it("shows revoked and expired keys with their status", async () => {
    const root = f.client(f.rootToken);
    const revoked = await root.createKey({ kind: "live" });
    await root.revokeKey({ id: keyOf(revoked).id });
    const got = keyOf(await root.getKey({ id: keyOf(revoked).id }));
    expect(got.status).toBe("revoked");
    expect(got.revokedAt).toBeDefined();

    // The admin API refuses an expiry already past; the row is written as a
    // key whose expiry has since passed would be.
    const expired = new KeyRepository(db).create({ kind: "live", expiresAt: Date.now() - 1_000 });
    expect(keyOf(await root.getKey({ id: expired.key.id })).status).toBe("expired");
  });

  it("lets a tenant admin, a researcher and a provisioner read the keys they manage", async () => {
    const admin = f.client(await f.adminJwt("acme"));
    const live = await admin.createKey({ scopes: ["sources:read"] });
    expect(keyOf(await admin.getKey({ id: keyOf(live).id })).tenant).toBe("acme");

    const researcher = f.client(await f.researcherJwt("auth0|ada"));
    const user = await researcher.createKey({ scopes: ["sources:read"] });
    expect(keyOf(await researcher.getKey({ id: keyOf(user).id })).owner).toBe("auth0|ada");

    const provisioner = await f
      .client(f.rootToken)
      .createKey({ kind: "live", tenant: "acme", scopes: ["keys:provision"] });
    const worker = await f.client(provisioner.secret).createKey({
      kind: "worker",
      binding: { experiment: "e", variation: "v", run: "r" },
    });
    const got = await f.client(provisioner.secret).getKey({ id: keyOf(worker).id });
    expect(keyOf(got).kind).toBe("worker");
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const created = await f.client(f.rootToken).createKey({ kind: "agent", scopes: ["runs:read"] });
    const got = await f.grpcClient(f.rootToken).getKey({ id: keyOf(created).id });
    expect(keyOf(got)).toEqual(keyOf(created));
  });

  it("audits the read with actor and key id", async () => {
    const created = await f.client(f.rootToken).createKey({ kind: "live", tenant: "audited" });
    const admin = await f.adminJwt("audited");
    await f.client(admin).getKey({ id: keyOf(created).id });
    expect(audit.list({ keyId: keyOf(created).id })[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|audited$/),
      action: "GetKey",
      keyId: keyOf(created).id,
      tenant: "audited",
      outcome: "ok",
    });
  });
});
