import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";

describe("RevokeRunKeys needs a whole run", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  const run = { experiment: "exp-1", variation: "1", run: "r-1" };
  const RUN_PATH = "/experiments/exp-1/variations/1/runs/r-1";
  let secret: string;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    secret = (await f.client(f.rootToken).createKey({ kind: "worker", binding: run })).secret;
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  const partial: [string, Record<string, unknown>][] = [
    ["no binding at all", {}],
    ["an empty binding", { binding: {} }],
    ["no experiment", { binding: { ...run, experiment: "" } }],
    ["no variation", { binding: { ...run, variation: "" } }],
    ["only a run id (which would end that run in every experiment)", { binding: { run: "r-1" } }],
  ];
  for (const [name, request] of partial) {
    it(`answers InvalidArgument for ${name}, revoking nothing`, async () => {
      const error = await refusal(f.client(f.rootToken).revokeRunKeys(request));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe("binding needs experiment, variation and run");
      expect(await decide(f.check, secret, RUN_PATH)).toBe("allow");
    });
  }

  it("answers the same over gRPC", async () => {
    const error = await refusal(f.grpcClient(f.rootToken).revokeRunKeys({}));
    expect(error.code).toBe(Code.InvalidArgument);
  });

  it("audits refused calls with their outcome", async () => {
    const refused = audit
      .list({}, 10_000)
      .filter((row) => row.action === "RevokeRunKeys" && row.outcome === "InvalidArgument");
    expect(refused).toHaveLength(partial.length + 1);
    expect(refused.every((row) => row.keyId === null)).toBe(true);
  });
});
