import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";
import { nowSeconds } from "../helpers/jwks.js";

describe("RotateKey only hands out secrets of keys the caller manages", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  /** A key of tenant acme, and the secret it was created with. */
  let acme: { id: string; secret: string };

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    const created = await f
      .client(await f.adminJwt("acme"))
      .createKey({ kind: "live", scopes: ["sources:read"] });
    acme = { id: created.key?.id ?? "", secret: created.secret };
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  it("refuses a missing token, an expired JWT and a revoked admin key with Unauthenticated", async () => {
    const root = f.client(f.rootToken);
    const revokedAdmin = await root.createKey({ kind: "live", scopes: ["keys:admin"] });
    await root.revokeKey({ id: revokedAdmin.key?.id ?? "" });
    const expired = await f.adminJwt("acme", undefined, { exp: nowSeconds() - 60 });
    const cases: [string | undefined, RegExp][] = [
      [undefined, /missing_credential/],
      [expired, /token_expired/],
      [revokedAdmin.secret, /key_revoked/],
    ];
    for (const [token, message] of cases) {
      const error = await refusal(f.client(token).rotateKey({ id: acme.id }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("answers another tenant's key exactly like a missing one, and leaves it working", async () => {
    const globex = f.client(await f.adminJwt("globex"));
    const error = await refusal(globex.rotateKey({ id: acme.id }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe(`key ${acme.id} not found`);
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("does not let a researcher rotate another researcher's key", async () => {
    const ada = await f
      .client(await f.researcherJwt("auth0|ada"))
      .createKey({ scopes: ["sources:read"] });
    const mallory = f.client(await f.researcherJwt("auth0|mallory"));
    expect((await refusal(mallory.rotateKey({ id: ada.key?.id ?? "" }))).code).toBe(Code.NotFound);
    expect(await decide(f.check, ada.secret, "/api/v1/sources")).toBe("allow");
  });

  it("does not let a tenant admin rotate (and so obtain) a researcher's user key in its tenant", async () => {
    const user = await f.client(f.rootToken).createKey({
      kind: "user",
      tenant: "acme",
      owner: "auth0|ada",
      scopes: ["sources:read"],
    });
    const admin = f.client(await f.adminJwt("acme"));
    expect((await refusal(admin.rotateKey({ id: user.key?.id ?? "" }))).code).toBe(Code.NotFound);
    expect(await decide(f.check, user.secret)).toBe("allow");
  });

  it("does not let a keys:provision key rotate anything but worker keys", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    const error = await refusal(f.client(provisioner.secret).rotateKey({ id: acme.id }));
    expect(error.code).toBe(Code.NotFound);
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  // DESIGN: a researcher's keys carry "scopes no wider than its own". A key
  // an administrator made for it may be wider; rotating it must not hand
  // the researcher a secret with scopes it does not hold.
  it("does not hand a researcher, by rotation, a key with scopes it does not hold", async () => {
    const agent = await f.client(f.rootToken).createKey({
      kind: "agent",
      owner: "auth0|ada",
      scopes: ["sources:read", "sources:write", "items:write"],
    });
    const ada = f.client(await f.researcherJwt("auth0|ada", ["sources:read"]));
    const error = await refusal(ada.rotateKey({ id: agent.key?.id ?? "" }));
    expect([Code.NotFound, Code.PermissionDenied]).toContain(error.code);
    expect(await decide(f.check, agent.secret)).toBe("allow");
  });

  // Rotation hands out a secret: it obeys the minting rules.
  describe("obeys the minting rules", () => {
    const RUN = { experiment: "exp-1", variation: "1", run: "r-1" };
    const RUN_PATH = "/experiments/exp-1/variations/1/runs/r-1";

    it("does not let a tenant admin without keys:provision rotate (and so obtain) a worker key", async () => {
      const worker = await f
        .client(f.rootToken)
        .createKey({ kind: "worker", tenant: "acme", binding: RUN });
      const admin = f.client(await f.adminJwt("acme"));
      // It may see the key, so the refusal says why instead of hiding it.
      expect((await admin.getKey({ id: worker.key?.id ?? "" })).key?.kind).toBe("worker");
      const error = await refusal(admin.rotateKey({ id: worker.key?.id ?? "" }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toMatch(/may not mint worker keys/);
      expect(await decide(f.check, worker.secret, RUN_PATH)).toBe("allow");
      // With keys:provision it could mint that worker key, so it may rotate it.
      const provisioning = f.client(await f.adminJwt("acme", ["keys:provision"]));
      const rotated = await provisioning.rotateKey({ id: worker.key?.id ?? "" });
      expect(await decide(f.check, rotated.secret, RUN_PATH)).toBe("allow");
    });

    it("does not let a tenant admin rotate a key with a scope its token does not carry", async () => {
      const wide = await f.client(f.rootToken).createKey({
        kind: "live",
        tenant: "acme",
        scopes: ["sources:read", "items:write"],
      });
      const narrow = f.client(await f.adminJwt("acme", ["sources:read"]));
      const error = await refusal(narrow.rotateKey({ id: wide.key?.id ?? "" }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toMatch(/"items:write"/);
      expect(await decide(f.check, wide.secret)).toBe("allow");
    });

    // The new secret would act as the owner upstream (x-auth-subject).
    it("does not let a tenant admin rotate (and so obtain) a key owned by someone else", async () => {
      const agent = await f.client(f.rootToken).createKey({
        kind: "agent",
        tenant: "acme",
        owner: "auth0|ada",
        scopes: ["sources:read"],
      });
      const admin = f.client(await f.adminJwt("acme"));
      const error = await refusal(admin.rotateKey({ id: agent.key?.id ?? "" }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toMatch(/^owner: /);
      expect(await decide(f.check, agent.secret)).toBe("allow");
    });

    it("lets a tenant admin rotate an ownerless key of its tenant (its subject is its id)", async () => {
      const ownerless = await f.client(f.rootToken).createKey({
        kind: "live",
        tenant: "acme",
        scopes: ["sources:read"],
      });
      expect(ownerless.key?.owner).toBe("");
      const rotated = await f
        .client(await f.adminJwt("acme"))
        .rotateKey({ id: ownerless.key?.id ?? "" });
      expect(await decide(f.check, rotated.secret)).toBe("allow");
    });
  });

  // A researcher's subject may equal the owner of a key in a tenant it does
  // not belong to (subjects are chosen by other issuers, other tenants).
  it("does not let a researcher rotate another tenant's key through an owner match", async () => {
    const globex = await f.client(f.rootToken).createKey({
      kind: "agent",
      tenant: "globex",
      owner: "auth0|ada",
      scopes: ["sources:read"],
    });
    const ada = f.client(await f.researcherJwt("auth0|ada", ["sources:read"]));
    const error = await refusal(ada.rotateKey({ id: globex.key?.id ?? "" }));
    expect(error.code).toBe(Code.NotFound);
    expect(await decide(f.check, globex.secret)).toBe("allow");
  });

  it("refuses a data-plane key with PermissionDenied, even for its own id", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    for (const id of [plain.key?.id ?? "", acme.id]) {
      const error = await refusal(f.client(plain.secret).rotateKey({ id }));
      expect(error.code).toBe(Code.PermissionDenied);
    }
    expect(await decide(f.check, plain.secret)).toBe("allow");
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("audits refused rotations with the caller, the requested id and the outcome", async () => {
    await refusal(f.client(await f.adminJwt("globex")).rotateKey({ id: acme.id }));
    expect(audit.list({ keyId: acme.id })[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|globex$/),
      action: "RotateKey",
      keyId: acme.id,
      outcome: "NotFound",
    });
    expect(JSON.stringify(audit.list({}, 10_000))).not.toMatch(/[0-9a-f]{48}/);
  });
});
