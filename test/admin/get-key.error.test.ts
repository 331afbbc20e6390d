import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";

describe("GetKey refuses ids it does not know", () => {
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
    const error = await refusal(f.client(f.rootToken).getKey({ id: "0123456789abcdef" }));
    expect(error.code).toBe(Code.NotFound);
    expect(error.rawMessage).toBe("key 0123456789abcdef not found");
  });

  it("answers NotFound for an empty id, a lookup, upper-case hex or a too-short id", async () => {
    const created = await f.client(f.rootToken).createKey({ kind: "live" });
    const id = created.key?.id ?? "";
    for (const wrong of ["", `sk_live_${id}`, id.toUpperCase(), id.slice(0, 15)]) {
      expect((await refusal(f.client(f.rootToken).getKey({ id: wrong }))).code).toBe(Code.NotFound);
    }
  });

  it("answers the same over gRPC", async () => {
    const error = await refusal(f.grpcClient(f.rootToken).getKey({ id: "0123456789abcdef" }));
    expect(error.code).toBe(Code.NotFound);
  });

  it("audits a failed read with the requested id and its outcome", async () => {
    await refusal(f.client(f.rootToken).getKey({ id: "fedcba9876543210" }));
    expect(audit.list({ keyId: "fedcba9876543210" })).toEqual([
      expect.objectContaining({ action: "GetKey", tenant: null, outcome: "NotFound" }),
    ]);
  });
});
