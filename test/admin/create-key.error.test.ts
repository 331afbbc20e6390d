import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";

describe("CreateKey refuses malformed requests", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  let rootActor: string;
  /** Every refused request below targets this tenant, so nothing may ever appear in it. */
  const TENANT = "malformed";

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    rootActor = `key:${f.rootToken.split("_")[2]}`;
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  const cases: { name: string; request: Record<string, unknown>; message: RegExp }[] = [
    {
      name: "an unknown kind",
      request: { kind: "admin" },
      message: /kind must be one of live, user, agent, worker/,
    },
    {
      name: "a scope with a space in it",
      request: { kind: "live", scopes: ["sources:read items:write"] },
      message: /invalid scope "sources:read items:write"/,
    },
    {
      name: "an empty scope",
      request: { kind: "live", scopes: [""] },
      message: /invalid scope ""/,
    },
    {
      name: "a worker key without a binding",
      request: { kind: "worker" },
      message: /worker key needs an experiment, a variation and a run/,
    },
    {
      name: "a worker key with half a binding",
      request: { kind: "worker", binding: { experiment: "e1", variation: "", run: "r1" } },
      message: /worker key needs an experiment, a variation and a run/,
    },
    {
      name: "a binding part with a slash (it would escape the run's path)",
      request: { kind: "worker", binding: { experiment: "e1", variation: "1", run: "r1/../r2" } },
      message: /contains "\/"/,
    },
    {
      name: "a binding on a live key",
      request: { kind: "live", binding: { experiment: "e1", variation: "1", run: "r1" } },
      message: /only worker keys are bound to a run, not live keys/,
    },
  ];

  for (const { name, request, message } of cases) {
    it(`answers InvalidArgument, saying what is wrong, for ${name}`, async () => {
      const error = await refusal(f.client(f.rootToken).createKey({ ...request, tenant: TENANT }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
    });

    // A client that retries safely sends an idempotency key with every
    // create; a malformed request must still be the caller's error, not ours.
    it(`answers InvalidArgument for ${name} sent with an idempotency key too`, async () => {
      const error = await refusal(
        f.client(f.rootToken).createKey({
          ...request,
          tenant: TENANT,
          idempotencyKey: `idem-${name}`,
        }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
    });
  }

  it("refuses to reuse an idempotency key for a different request with AlreadyExists", async () => {
    const root = f.client(f.rootToken);
    const first = await root.createKey({ kind: "live", tenant: "idem", idempotencyKey: "same" });
    const error = await refusal(
      root.createKey({
        kind: "live",
        tenant: "idem",
        scopes: ["sources:read"],
        idempotencyKey: "same",
      }),
    );
    expect(error.code).toBe(Code.AlreadyExists);
    expect(error.rawMessage).toMatch(/idempotency key was already used for a different request/);
    expect((await root.listKeys({ tenant: "idem" })).keys.map((key) => key.id)).toEqual([
      first.key?.id,
    ]);
  });

  it("creates nothing for a refused request and audits it with its error code", async () => {
    expect((await f.client(f.rootToken).listKeys({ tenant: TENANT })).keys).toEqual([]);
    const refused = audit
      .list({}, 10_000)
      .filter((row) => row.action === "CreateKey" && row.outcome === "InvalidArgument");
    expect(refused.length).toBeGreaterThanOrEqual(cases.length);
    for (const row of refused) {
      expect(row).toMatchObject({ actor: rootActor, keyId: null, tenant: null });
    }
    expect(refused.map((row) => row.detail)).toContainEqual(
      expect.stringMatching(/worker key needs an experiment/),
    );
  });
});
