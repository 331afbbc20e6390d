import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";

describe("RevokeKey refuses ids it does not know", () => {
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
    const error = await refusal(f.client(f.rootToken).revokeKey({ id: "0123456789abcdef" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe("key 0123456789abcdef not found");
  });

  it("answers NotFound for an empty id, a lookup instead of an id, or a whole key", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const lookup = created.key?.keyLookup ?? "";
    for (const id of ["", lookup, created.secret]) {
      expect((await refusal(f.client(f.rootToken).revokeKey({ id }))).code).toBe(Code.NotFound);
    }
    expect(await decide(f.check, created.secret)).toBe("allow");
  });

  it("audits a refused revocation with the requested id and its outcome", async () => {
    await refusal(f.client(f.rootToken).revokeKey({ id: "fedcba9876543210" }));
    expect(audit.list({ keyId: "fedcba9876543210" })).toEqual([
      expect.objectContaining({ action: "RevokeKey", tenant: null, outcome: "NotFound" }),
    ]);
  });

  // `keyward keys revoke sk_live_…_…` is an easy mistake: the refusal must
  // not copy the pasted secret into the audit trail.
  it("never writes a whole key, pasted as the id by mistake, into the audit trail", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const error = await refusal(f.client(f.rootToken).revokeKey({ id: created.secret }));
    expect(error.code).toBe(Code.NotFound);
    const secret = created.secret.slice(-48);
    for (const row of audit.list({}, 10_000)) {
      expect(JSON.stringify(row)).not.toContain(secret);
    }
  });
});
