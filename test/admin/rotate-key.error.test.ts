import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";

describe("RotateKey refuses what cannot be rotated", () => {
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

  it("answers NotFound, naming the id, for a key that does not exist", async () => {
    const error = await refusal(f.client(f.rootToken).rotateKey({ id: "0123456789abcdef" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe("key 0123456789abcdef not found");
  });

  it("answers NotFound for an empty or malformed id", async () => {
    for (const id of ["", "sk_live_0123456789abcdef", "../../etc/passwd"]) {
      expect((await refusal(f.client(f.rootToken).rotateKey({ id }))).code).toBe(Code.NotFound);
    }
  });

  it("refuses to rotate a revoked key with FailedPrecondition, and the key stays revoked", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = created.key?.id ?? "";
    await root.revokeKey({ id });
    const error = await refusal(root.rotateKey({ id }));
    expect(error.code).toBe(Code.FailedPrecondition);
    expect(error.rawMessage).toMatch(/revoked and cannot be rotated/);
    expect((await root.getKey({ id })).key?.status).toBe("revoked");
    expect(await decide(f.check, created.secret)).toBe("key_revoked");
  });

  // A key minted on the box (keys create --db) or before a policy change may
  // hold a scope keyward no longer knows: a new secret for it is refused
  // like a create naming that scope; revoking it still works.
  it("refuses to rotate a key holding a scope keyward does not know, naming the scope", async () => {
    const legacy = new KeyRepository(db).create({
      kind: "live",
      scopes: ["sources:read", "legacy:x"],
    });
    const root = f.client(f.rootToken);
    const error = await refusal(root.rotateKey({ id: legacy.key.id }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/^scopes: "legacy:x" is not a scope keyward knows/);
    expect(await decide(f.check, legacy.secret)).toBe("allow");
    expect((await root.revokeKey({ id: legacy.key.id })).key?.status).toBe("revoked");
  });

  it("audits a refused rotation with the requested id and its error code", async () => {
    await refusal(f.client(f.rootToken).rotateKey({ id: "fedcba9876543210" }));
    expect(audit.list({ keyId: "fedcba9876543210" })).toEqual([
      expect.objectContaining({ action: "RotateKey", tenant: null, outcome: "NotFound" }),
    ]);
  });
});
