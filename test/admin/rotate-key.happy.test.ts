import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, keyOf, startAdminFixture } from "../helpers/admin.js";

describe("RotateKey", () => {
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

  it("keeps the key's id and returns a new secret; the old one answers invalid_token at once", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({
      kind: "live",
      name: "CI importer",
      tenant: "acme",
      scopes: ["sources:read", "runs:read"],
    });
    expect(await decide(f.check, created.secret)).toBe("allow");

    const rotated = await root.rotateKey({ id: keyOf(created).id });
    // Everything but the secret stays (lastUsedAt may move: the Check above used the key).
    expect({ ...keyOf(rotated), lastUsedAt: undefined }).toEqual({
      ...keyOf(created),
      lastUsedAt: undefined,
    });
    expect(rotated.secret).not.toBe(created.secret);
    expect(rotated.secret).toMatch(new RegExp(`^${keyOf(created).keyLookup}_[0-9a-f]{48}$`));
    expect(await decide(f.check, created.secret)).toBe("invalid_token");
    expect(await decide(f.check, rotated.secret)).toBe("allow");
    expect(await decide(f.check, rotated.secret, "/api/v1/sources/s1/runs")).toBe("allow");
  });

  it("lets only the latest of several rotations work", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "agent", scopes: ["sources:read"] });
    const secrets = [created.secret];
    for (let i = 0; i < 3; i++)
      secrets.push((await root.rotateKey({ id: keyOf(created).id })).secret);
    expect(new Set(secrets).size).toBe(4);
    const decisions = await Promise.all(secrets.map((secret) => decide(f.check, secret)));
    expect(decisions).toEqual(["invalid_token", "invalid_token", "invalid_token", "allow"]);
  });

  it("keeps a worker key's binding and expiry, so the new secret works on the same run", async () => {
    const root = f.client(f.rootToken);
    const binding = { experiment: "e1", variation: "1", run: "r1" };
    const created = await root.createKey({ kind: "worker", binding, scopes: ["runs:read"] });
    const rotated = await root.rotateKey({ id: keyOf(created).id });
    expect(keyOf(rotated).binding).toMatchObject(binding);
    expect(keyOf(rotated).expiresAt).toEqual(keyOf(created).expiresAt);
    expect(await decide(f.check, rotated.secret, "/experiments/e1/variations/1/runs/r1")).toBe(
      "allow",
    );
    expect(await decide(f.check, created.secret, "/experiments/e1/variations/1/runs/r1")).toBe(
      "invalid_token",
    );
  });

  it("lets a tenant admin rotate its tenant's keys and a researcher its own keys", async () => {
    const admin = f.client(await f.adminJwt("acme"));
    const live = await admin.createKey({ scopes: ["sources:read"] });
    const rotatedLive = await admin.rotateKey({ id: keyOf(live).id });
    expect(await decide(f.check, rotatedLive.secret)).toBe("allow");

    const researcher = f.client(await f.researcherJwt("auth0|ada"));
    const user = await researcher.createKey({ scopes: ["sources:read"] });
    const rotatedUser = await researcher.rotateKey({ id: keyOf(user).id });
    expect(keyOf(rotatedUser)).toMatchObject({ id: keyOf(user).id, owner: "auth0|ada" });
    expect(await decide(f.check, user.secret)).toBe("invalid_token");
    expect(await decide(f.check, rotatedUser.secret)).toBe("allow");
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const rotated = await f.grpcClient(f.rootToken).rotateKey({ id: keyOf(created).id });
    expect(keyOf(rotated).id).toBe(keyOf(created).id);
    expect(await decide(f.check, rotated.secret)).toBe("allow");
  });

  it("audits the rotation with actor, key id and tenant, and neither secret", async () => {
    const created = await f.client(f.rootToken).createKey({ kind: "live", tenant: "audited" });
    const rotated = await f
      .client(await f.adminJwt("audited"))
      .rotateKey({ id: keyOf(created).id });
    expect(audit.list({ keyId: keyOf(created).id })[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|audited$/),
      action: "RotateKey",
      keyId: keyOf(created).id,
      tenant: "audited",
      outcome: "ok",
    });
    const everything = JSON.stringify(audit.list({}, 10_000));
    expect(everything).not.toContain(created.secret.slice(-48));
    expect(everything).not.toContain(rotated.secret.slice(-48));
  });
});
