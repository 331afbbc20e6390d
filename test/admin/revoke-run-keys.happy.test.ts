import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, startAdminFixture } from "../helpers/admin.js";

interface Binding {
  experiment: string;
  variation: string;
  run: string;
}

const pathOf = (b: Binding) =>
  `/experiments/${b.experiment}/variations/${b.variation}/runs/${b.run}`;

describe("RevokeRunKeys", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;

  /** Mints a worker key for the run with the given token (root by default). */
  async function worker(binding: Binding, tenant = "acme", token = f.rootToken) {
    const created = await f.client(token).createKey({
      kind: "worker",
      binding,
      ...(token === f.rootToken ? { tenant } : {}),
    });
    return { id: created.key?.id ?? "", secret: created.secret, binding };
  }

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  it("revokes every worker key of one run, and only those", async () => {
    const ended = { experiment: "exp-1", variation: "1", run: "r-1" };
    const a = await worker(ended);
    const b = await worker(ended);
    const otherRun = await worker({ ...ended, run: "r-2" });
    const otherVariation = await worker({ ...ended, variation: "2" });
    const otherExperiment = await worker({ ...ended, experiment: "exp-2" });
    const live = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });

    const answer = await f.client(f.rootToken).revokeRunKeys({ binding: ended });
    expect(answer.keys.map((key) => key.id).sort()).toEqual([a.id, b.id].sort());
    for (const key of answer.keys) {
      expect(key).toMatchObject({ kind: "worker", status: "revoked", binding: ended });
    }
    expect(await decide(f.check, a.secret, pathOf(ended))).toBe("key_revoked");
    expect(await decide(f.check, b.secret, pathOf(ended))).toBe("key_revoked");
    for (const other of [otherRun, otherVariation, otherExperiment]) {
      expect(await decide(f.check, other.secret, pathOf(other.binding))).toBe("allow");
    }
    expect(await decide(f.check, live.secret)).toBe("allow");
  });

  it("answers an empty list for a run that is already over or never had keys", async () => {
    const run = { experiment: "exp-3", variation: "1", run: "r-1" };
    await worker(run);
    expect((await f.client(f.rootToken).revokeRunKeys({ binding: run })).keys).toHaveLength(1);
    expect((await f.client(f.rootToken).revokeRunKeys({ binding: run })).keys).toEqual([]);
    const never = { experiment: "nope", variation: "0", run: "none" };
    expect((await f.client(f.rootToken).revokeRunKeys({ binding: never })).keys).toEqual([]);
  });

  it("lets the keys:provision key that started a run end it", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    const run = { experiment: "exp-4", variation: "1", run: "r-9" };
    const key = await worker(run, "acme", provisioner.secret);
    const answer = await f.client(provisioner.secret).revokeRunKeys({ binding: run });
    expect(answer.keys.map((k) => k.id)).toEqual([key.id]);
    expect(await decide(f.check, key.secret, pathOf(run))).toBe("key_revoked");
  });

  it("lets a tenant admin holding keys:provision end a run of its tenant", async () => {
    const run = { experiment: "exp-5", variation: "1", run: "r-1" };
    const key = await worker(run, "acme");
    const admin = await f.adminJwt("acme", ["keys:provision"]);
    const answer = await f.client(admin).revokeRunKeys({ binding: run });
    expect(answer.keys.map((k) => k.id)).toEqual([key.id]);
    expect(await decide(f.check, key.secret, pathOf(run))).toBe("key_revoked");
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const run = { experiment: "exp-6", variation: "1", run: "r-1" };
    const key = await worker(run);
    const answer = await f.grpcClient(f.rootToken).revokeRunKeys({ binding: run });
    expect(answer.keys.map((k) => k.id)).toEqual([key.id]);
    expect(await decide(f.check, key.secret, pathOf(run))).toBe("key_revoked");
  });

  it("audits one row per revoked key, with actor and tenant, and no secret", async () => {
    const run = { experiment: "exp-7", variation: "1", run: "r-1" };
    const a = await worker(run, "audited");
    const b = await worker(run, "audited");
    await f.client(await f.adminJwt("audited", ["keys:provision"])).revokeRunKeys({ binding: run });
    for (const key of [a, b]) {
      expect(audit.list({ keyId: key.id })[0]).toMatchObject({
        actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|audited$/),
        action: "RevokeRunKeys",
        keyId: key.id,
        tenant: "audited",
        outcome: "ok",
      });
    }
    expect(JSON.stringify(audit.list({}, 10_000))).not.toMatch(/[0-9a-f]{48}/);
  });
});
