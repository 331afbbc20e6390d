import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import {
  type AdminFixture,
  decide,
  keyOf,
  refusal,
  rest,
  startAdminFixture,
} from "../helpers/admin.js";

describe("SuspendKey and ResumeKey refuse what they cannot do", () => {
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

  it("answers NotFound for an unknown id, a lookup or a whole key", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    for (const id of ["0123456789abcdef", "", keyOf(created).keyLookup, created.secret]) {
      expect((await refusal(root.suspendKey({ id }))).code).toBe(Code.NotFound);
      expect((await refusal(root.resumeKey({ id }))).code).toBe(Code.NotFound);
    }
    expect(await decide(f.check, created.secret)).toBe("allow");
    expect(
      (await rest(f, "POST", "/v1/admin/keys/nothex/suspend", { token: f.rootToken })).status,
    ).toBe(404);
    expect(
      (await rest(f, "GET", `/v1/admin/keys/${keyOf(created).id}/suspend`, { token: f.rootToken }))
        .status,
    ).toBe(404);
  });

  it("keeps revocation final: a revoked key can be neither suspended nor resumed", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    await root.revokeKey({ id });
    for (const call of [root.suspendKey({ id }), root.resumeKey({ id })]) {
      const error = await refusal(call);
      expect(error.code).toBe(Code.FailedPrecondition);
      expect(error.rawMessage).toMatch(/revoked/);
    }
    const viaRest = await rest(f, "POST", `/v1/admin/keys/${id}/resume`, { token: f.rootToken });
    expect(viaRest.status).toBe(409);
    expect(viaRest.body.error).toBe("failed_precondition");
    expect(await decide(f.check, created.secret)).toBe("key_revoked");
    expect(audit.list({ keyId: id })[0]).toMatchObject({
      action: "ResumeKey",
      outcome: "FailedPrecondition",
    });
  });
});
