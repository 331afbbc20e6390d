import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";
import { nowSeconds } from "../helpers/jwks.js";

describe("ListKeys lists only what the caller manages", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  const binding = { experiment: "e", variation: "v", run: "r" };
  /** Key ids by label, made in beforeAll. */
  const id: Record<string, string> = {};

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    const root = f.client(f.rootToken);
    const mint = async (label: string, request: Record<string, unknown>) => {
      id[label] = (await root.createKey(request)).key?.id ?? "";
    };
    await mint("acmeLive", { kind: "live", tenant: "acme" });
    await mint("acmeWorker", { kind: "worker", tenant: "acme", binding });
    await mint("acmeUser", { kind: "user", tenant: "acme", owner: "auth0|ada" });
    await mint("globexLive", { kind: "live", tenant: "globex" });
    await mint("globexWorker", { kind: "worker", tenant: "globex", binding });
    await mint("adaUser", { kind: "user", owner: "auth0|ada" });
    await mint("adaAgent", { kind: "agent", owner: "auth0|ada" });
    await mint("bobUser", { kind: "user", owner: "auth0|bob" });
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  const listed = async (token: string, request: Record<string, string> = {}) =>
    (await f.client(token).listKeys(request)).keys.map((key) => key.id).sort();
  const labels = (...names: string[]) => names.map((name) => id[name]).sort();

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
      const error = await refusal(f.client(token).listKeys({}));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
  });

  it("shows a tenant admin its own tenant only, whatever tenant it asks for", async () => {
    const admin = await f.adminJwt("acme");
    const own = labels("acmeLive", "acmeWorker");
    expect(await listed(admin)).toEqual(own);
    // Asking for another tenant narrows to nothing; it never widens.
    expect(await listed(admin, { tenant: "globex" })).toEqual([]);
    expect(await listed(await f.adminJwt("globex"))).toEqual(labels("globexLive", "globexWorker"));
  });

  it("hides the researchers' user keys from their tenant's admin", async () => {
    expect(await listed(await f.adminJwt("acme"), { kind: "user" })).toEqual([]);
  });

  it("shows a researcher its own keys only, whatever owner it asks for", async () => {
    const ada = await f.researcherJwt("auth0|ada");
    expect(await listed(ada)).toEqual(labels("adaUser", "adaAgent"));
    const bob = await f.researcherJwt("auth0|bob");
    expect(await listed(bob)).toEqual(labels("bobUser"));
    expect(await listed(bob, { owner: "auth0|ada" })).toEqual([]);
    expect(await listed(bob, { tenant: "acme" })).toEqual([]);
  });

  // A subject is only unique within its issuer and tenant: acme's key owned
  // by "auth0|ada" is not the key of a researcher "auth0|ada" outside acme.
  it("never shows or hands a researcher another tenant's key through an owner match", async () => {
    const outside = f.client(await f.researcherJwt("auth0|ada"));
    const member = f.client(await f.researcherJwt("auth0|ada", undefined, { org_id: "acme" }));
    const ids = async (client: typeof outside) =>
      (await client.listKeys({})).keys.map((key) => key.id).sort();
    expect(await ids(outside)).not.toContain(id.acmeUser);
    expect(await ids(member)).toEqual(labels("acmeUser"));
    expect((await outside.listKeys({ owner: "auth0|ada", tenant: "acme" })).keys).toEqual([]);
    expect((await refusal(outside.getKey({ id: id.acmeUser as string }))).code).toBe(Code.NotFound);
    expect((await refusal(member.getKey({ id: id.adaUser as string }))).code).toBe(Code.NotFound);
    expect((await member.getKey({ id: id.acmeUser as string })).key?.tenant).toBe("acme");
  });

  it("shows a keys:provision key the worker keys of its tenant only", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    expect(await listed(provisioner.secret)).toEqual(labels("acmeWorker"));
    // Asking for live keys narrows to nothing; it is not answered with workers.
    expect(await listed(provisioner.secret, { kind: "live" })).toEqual([]);
  });

  it("refuses a data-plane key with PermissionDenied", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read", "items:read"],
    });
    const error = await refusal(f.client(plain.secret).listKeys({}));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/may not list keys/);
  });

  it("does not let a page token reach past the caller's own keys", async () => {
    // A cursor pointing just after a far-future key would start at the newest
    // key of the whole table; the caller's filter must still apply.
    const cursor = Buffer.from(JSON.stringify([Date.now() + 3_600_000, "ffffffffffffffff"]));
    const bob = await f.researcherJwt("auth0|bob");
    const page = await f.client(bob).listKeys({ pageToken: cursor.toString("base64url") });
    expect(page.keys.map((key) => key.id)).toEqual([id.bobUser]);
  });

  it("audits refused listings with the caller and the outcome", async () => {
    const plain = await f.client(f.rootToken).createKey({ kind: "live", scopes: [] });
    await refusal(f.client(plain.secret).listKeys({}));
    expect(audit.list({}, 1)[0]).toMatchObject({
      actor: `key:${plain.key?.id}`,
      action: "ListKeys",
      outcome: "PermissionDenied",
    });
  });
});
