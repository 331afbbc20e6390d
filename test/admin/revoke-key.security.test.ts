import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import {
  ADMIN_ISSUER,
  type AdminFixture,
  decide,
  refusal,
  rest,
  startAdminFixture,
} from "../helpers/admin.js";
import { claims, newSigningKey, nowSeconds, signToken } from "../helpers/jwks.js";

describe("RevokeKey only revokes keys the caller manages", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  /** A key of tenant acme, and its secret. */
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

  it("refuses a missing, expired, forged or revoked credential with Unauthenticated", async () => {
    const root = f.client(f.rootToken);
    const revokedAdmin = await root.createKey({ kind: "live", scopes: ["keys:admin"] });
    await root.revokeKey({ id: revokedAdmin.key?.id ?? "" });
    // Signed with a key the issuer never published, under the issuer's own kid.
    const forged = await signToken(
      await newSigningKey("admin-test"),
      claims({ iss: ADMIN_ISSUER, sub: "admin|acme", org_id: "acme", permissions: ["keys:admin"] }),
    );
    const cases: [string | undefined, RegExp][] = [
      [undefined, /missing_credential/],
      [await f.adminJwt("acme", undefined, { exp: nowSeconds() - 60 }), /token_expired/],
      [forged, /invalid_token/],
      [revokedAdmin.secret, /key_revoked/],
    ];
    for (const [token, message] of cases) {
      const error = await refusal(f.client(token).revokeKey({ id: acme.id }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("answers another tenant's key exactly like a missing one, and leaves it working", async () => {
    const globex = f.client(await f.adminJwt("globex"));
    const error = await refusal(globex.revokeKey({ id: acme.id }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe(`key ${acme.id} not found`);
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("does not let a researcher revoke another researcher's key", async () => {
    const ada = await f
      .client(await f.researcherJwt("auth0|ada"))
      .createKey({ scopes: ["sources:read"] });
    const mallory = f.client(await f.researcherJwt("auth0|mallory"));
    expect((await refusal(mallory.revokeKey({ id: ada.key?.id ?? "" }))).code).toBe(Code.NotFound);
    expect(await decide(f.check, ada.secret)).toBe("allow");
  });

  it("does not let a keys:provision key revoke live keys", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    const error = await refusal(f.client(provisioner.secret).revokeKey({ id: acme.id }));
    expect(error.code).toBe(Code.NotFound);
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  // Revocation destroys a secret: the caller must be able to mint such a key.
  it("does not let a tenant admin without keys:provision revoke a worker key of its tenant", async () => {
    const run = { experiment: "exp-1", variation: "1", run: "r-1" };
    const worker = await f
      .client(f.rootToken)
      .createKey({ kind: "worker", tenant: "acme", binding: run });
    const error = await refusal(
      f.client(await f.adminJwt("acme")).revokeKey({ id: worker.key?.id ?? "" }),
    );
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/may not mint worker keys/);
    expect(await decide(f.check, worker.secret, "/experiments/exp-1/variations/1/runs/r-1")).toBe(
      "allow",
    );
  });

  it("does not let a tenant admin revoke a key with a scope its token does not carry", async () => {
    const wide = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read", "runs:apply"],
    });
    const narrow = f.client(await f.adminJwt("acme", ["sources:read"]));
    const error = await refusal(narrow.revokeKey({ id: wide.key?.id ?? "" }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/"runs:apply"/);
    expect(await decide(f.check, wide.secret)).toBe("allow");
  });

  it("does not let a researcher revoke another tenant's key through an owner match", async () => {
    const globex = await f.client(f.rootToken).createKey({
      kind: "agent",
      tenant: "globex",
      owner: "auth0|ada",
      scopes: ["sources:read"],
    });
    const ada = f.client(await f.researcherJwt("auth0|ada", ["sources:read"]));
    expect((await refusal(ada.revokeKey({ id: globex.key?.id ?? "" }))).code).toBe(Code.NotFound);
    const viaChronicle = await rest(f, "DELETE", `/api-keys/${globex.key?.id}`, {
      token: await f.researcherJwt("auth0|ada", ["sources:read"]),
    });
    expect(viaChronicle.status).toBe(404);
    expect(await decide(f.check, globex.secret)).toBe("allow");
  });

  it("refuses a data-plane key with PermissionDenied, even for its own id", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read", "sources:write"],
    });
    for (const id of [plain.key?.id ?? "", acme.id]) {
      const error = await refusal(f.client(plain.secret).revokeKey({ id }));
      expect(error.code).toBe(Code.PermissionDenied);
    }
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("locks a revoked keys:admin key out of the admin API at once", async () => {
    const root = f.client(f.rootToken);
    const admin = await root.createKey({ kind: "live", scopes: ["keys:admin"] });
    expect((await f.client(admin.secret).getKey({ id: acme.id })).key?.id).toBe(acme.id);
    await root.revokeKey({ id: admin.key?.id ?? "" });
    const error = await refusal(f.client(admin.secret).revokeKey({ id: acme.id }));
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toMatch(/key_revoked/);
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("audits refused revocations with the caller, the requested id and the outcome", async () => {
    const mallory = await f.researcherJwt("auth0|mallory");
    await refusal(f.client(mallory).revokeKey({ id: acme.id }));
    expect(audit.list({ keyId: acme.id })[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#auth0\|mallory$/),
      action: "RevokeKey",
      keyId: acme.id,
      outcome: "NotFound",
    });
    const anonymous = audit
      .list({}, 10_000)
      .filter((row) => row.action === "RevokeKey" && row.actor === "anonymous");
    expect(anonymous.map((row) => row.detail).sort()).toEqual(
      ["invalid_token", "key_revoked", "key_revoked", "missing_credential", "token_expired"].sort(),
    );
  });
});
