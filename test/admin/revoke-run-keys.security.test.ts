import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";
import { nowSeconds } from "../helpers/jwks.js";

describe("RevokeRunKeys ends only runs the caller manages", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  // The same run coordinates in two tenants.
  const run = { experiment: "exp-1", variation: "1", run: "r-1" };
  const RUN_PATH = "/experiments/exp-1/variations/1/runs/r-1";
  let acmeWorker: string;
  let globexWorker: string;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    const root = f.client(f.rootToken);
    acmeWorker = (await root.createKey({ kind: "worker", tenant: "acme", binding: run })).secret;
    globexWorker = (await root.createKey({ kind: "worker", tenant: "globex", binding: run }))
      .secret;
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  const bothStillWork = async () => {
    expect(await decide(f.check, acmeWorker, RUN_PATH)).toBe("allow");
    expect(await decide(f.check, globexWorker, RUN_PATH)).toBe("allow");
  };

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
      const error = await refusal(f.client(token).revokeRunKeys({ binding: run }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
    await bothStillWork();
  });

  it("refuses a researcher with PermissionDenied", async () => {
    const researcher = f.client(await f.researcherJwt("auth0|ada"));
    const error = await refusal(researcher.revokeRunKeys({ binding: run }));
    expect(error.code).toBe(Code.PermissionDenied);
    await bothStillWork();
  });

  it("refuses a data-plane key, even the run's own worker key, with PermissionDenied", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["runs:execute", "runs:apply"],
    });
    for (const token of [plain.secret, acmeWorker]) {
      const error = await refusal(f.client(token).revokeRunKeys({ binding: run }));
      expect(error.code).toBe(Code.PermissionDenied);
    }
    await bothStillWork();
  });

  it("lets a tenant admin end the run in its own tenant only", async () => {
    const outsider = f.client(await f.adminJwt("initech", ["keys:provision"]));
    expect((await outsider.revokeRunKeys({ binding: run })).keys).toEqual([]);
    await bothStillWork();
  });

  // Ending a run destroys worker secrets: only a caller that could mint
  // those worker keys may (DESIGN: revoking requires the minting rules).
  it("refuses a tenant admin without keys:provision, revoking nothing", async () => {
    const admin = f.client(await f.adminJwt("acme"));
    const error = await refusal(admin.revokeRunKeys({ binding: run }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/may not mint worker keys/);
    await bothStillWork();
  });

  it("refuses a provisioner that could not grant a worker's scopes, revoking none of the run", async () => {
    const other = { experiment: "exp-2", variation: "1", run: "r-1" };
    const root = f.client(f.rootToken);
    const plain = await root.createKey({ kind: "worker", tenant: "acme", binding: other });
    const wide = await root.createKey({
      kind: "worker",
      tenant: "acme",
      binding: other,
      scopes: ["runs:apply"],
    });
    const provisioner = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision", "runs:read"],
    });
    const error = await refusal(f.client(provisioner.secret).revokeRunKeys({ binding: other }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/"runs:apply"/);
    const path = "/experiments/exp-2/variations/1/runs/r-1";
    expect(await decide(f.check, plain.secret, path)).toBe("allow");
    expect(await decide(f.check, wide.secret, path)).toBe("allow");
  });

  it("lets a keys:provision key end the run in its own tenant only", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "globex",
      scopes: ["keys:provision"],
    });
    const answer = await f.client(provisioner.secret).revokeRunKeys({ binding: run });
    expect(answer.keys.map((key) => key.tenant)).toEqual(["globex"]);
    expect(await decide(f.check, globexWorker, RUN_PATH)).toBe("key_revoked");
    expect(await decide(f.check, acmeWorker, RUN_PATH)).toBe("allow");
  });

  it("audits refused attempts with the caller and the outcome", async () => {
    await refusal(f.client(await f.researcherJwt("auth0|eve")).revokeRunKeys({ binding: run }));
    expect(audit.list({}, 1)[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#auth0\|eve$/),
      action: "RevokeRunKeys",
      keyId: null,
      outcome: "PermissionDenied",
    });
  });
});
