import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";
import { nowSeconds } from "../helpers/jwks.js";

describe("GetKey shows a key only to those who manage it", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;
  let acmeId: string;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    const created = await f.client(await f.adminJwt("acme")).createKey({ kind: "live" });
    acmeId = created.key?.id ?? "";
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  it("refuses a missing token, an expired JWT and a revoked admin key with Unauthenticated", async () => {
    const root = f.client(f.rootToken);
    const revokedAdmin = await root.createKey({ kind: "live", scopes: ["keys:admin"] });
    await root.revokeKey({ id: revokedAdmin.key?.id ?? "" });
    const expired = await f.researcherJwt("auth0|ada", undefined, { exp: nowSeconds() - 60 });
    const cases: [string | undefined, RegExp][] = [
      [undefined, /missing_credential/],
      [expired, /token_expired/],
      [revokedAdmin.secret, /key_revoked/],
      ["sk_live_0123456789abcdef_not-a-secret", /invalid_token/],
    ];
    for (const [token, message] of cases) {
      const error = await refusal(f.client(token).getKey({ id: acmeId }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
  });

  it("answers another tenant's key with the very NotFound an unknown id gets", async () => {
    const globex = f.client(await f.adminJwt("globex"));
    const foreign = await refusal(globex.getKey({ id: acmeId }));
    const unknown = await refusal(globex.getKey({ id: "0123456789abcdef" }));
    expect(foreign.code).toBe(Code.NotFound);
    expect(unknown.code).toBe(Code.NotFound);
    expect(foreign.rawMessage.replace(acmeId, "<id>")).toBe(
      unknown.rawMessage.replace("0123456789abcdef", "<id>"),
    );
  });

  it("does not show a researcher another researcher's keys", async () => {
    const ada = await f.client(await f.researcherJwt("auth0|ada")).createKey({});
    const mallory = f.client(await f.researcherJwt("auth0|mallory"));
    expect((await refusal(mallory.getKey({ id: ada.key?.id ?? "" }))).code).toBe(Code.NotFound);
    expect((await refusal(mallory.getKey({ id: acmeId }))).code).toBe(Code.NotFound);
  });

  it("does not show a tenant admin the researchers' user keys in its tenant", async () => {
    const user = await f.client(f.rootToken).createKey({
      kind: "user",
      tenant: "acme",
      owner: "auth0|ada",
    });
    const admin = f.client(await f.adminJwt("acme"));
    expect((await refusal(admin.getKey({ id: user.key?.id ?? "" }))).code).toBe(Code.NotFound);
  });

  it("shows a keys:provision key worker keys of its tenant only", async () => {
    const root = f.client(f.rootToken);
    const binding = { experiment: "e", variation: "v", run: "r" };
    const provisioner = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    const acmeWorker = await root.createKey({ kind: "worker", tenant: "acme", binding });
    const globexWorker = await root.createKey({ kind: "worker", tenant: "globex", binding });
    const client = f.client(provisioner.secret);
    expect((await client.getKey({ id: acmeWorker.key?.id ?? "" })).key?.tenant).toBe("acme");
    expect((await refusal(client.getKey({ id: acmeId }))).code).toBe(Code.NotFound);
    expect((await refusal(client.getKey({ id: globexWorker.key?.id ?? "" }))).code).toBe(
      Code.NotFound,
    );
  });

  it("refuses a data-plane key with PermissionDenied, even for its own id", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    for (const id of [plain.key?.id ?? "", acmeId]) {
      const error = await refusal(f.client(plain.secret).getKey({ id }));
      expect(error.code).toBe(Code.PermissionDenied);
    }
  });

  it("audits refused reads with the caller, the requested id and the outcome", async () => {
    await refusal(f.client(await f.adminJwt("globex")).getKey({ id: acmeId }));
    expect(audit.list({ keyId: acmeId })[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|globex$/),
      action: "GetKey",
      keyId: acmeId,
      outcome: "NotFound",
    });
  });
});
