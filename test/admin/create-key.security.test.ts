import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import {
  ADMIN_ISSUER,
  type AdminFixture,
  decide,
  refusal,
  rest,
  startAdminFixture,
} from "../helpers/admin.js";
import { claims, newSigningKey, nowSeconds, signToken } from "../helpers/jwks.js";

const RUN = { experiment: "exp-1", variation: "1", run: "r-1" };

describe("CreateKey only mints what the caller may grant", () => {
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

  describe("authentication", () => {
    it("refuses JWTs signed by a key the issuer never published, whatever their kid", async () => {
      for (const kid of ["admin-test", "rogue"]) {
        const rogue = await newSigningKey(kid);
        const forged = await signToken(
          rogue,
          claims({
            iss: ADMIN_ISSUER,
            sub: "admin|acme",
            org_id: "acme",
            permissions: ["keys:admin"],
          }),
        );
        const error = await refusal(f.client(forged).createKey({ kind: "live" }));
        expect(error.code).toBe(Code.Unauthenticated);
        expect(error.rawMessage).toMatch(/invalid_token/);
      }
    });

    it("refuses a call without a token with Unauthenticated, and audits it as anonymous", async () => {
      const error = await refusal(f.client().createKey({ kind: "live" }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(/missing_credential/);
      expect(audit.list({}, 1)[0]).toMatchObject({
        actor: "anonymous",
        action: "CreateKey",
        keyId: null,
        outcome: "unauthenticated",
        detail: "missing_credential",
      });
    });

    it("refuses an expired admin session JWT with Unauthenticated", async () => {
      const expired = await f.adminJwt("acme", undefined, {
        iat: nowSeconds() - 7_200,
        exp: nowSeconds() - 3_600,
      });
      const error = await refusal(f.client(expired).createKey({ kind: "live" }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(/token_expired/);
    });

    it("refuses a revoked keys:admin key with Unauthenticated naming key_revoked", async () => {
      const root = f.client(f.rootToken);
      const admin = await root.createKey({ kind: "live", scopes: ["keys:admin"] });
      await root.revokeKey({ id: admin.key?.id ?? "" });
      const error = await refusal(f.client(admin.secret).createKey({ kind: "live" }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(/key_revoked/);
    });
  });

  describe("a tenant admin", () => {
    it("cannot grant a scope it does not hold, keys:admin least of all", async () => {
      const admin = f.client(await f.adminJwt("acme", ["sources:read"]));
      for (const scopes of [["keys:admin"], ["keys:provision"], ["sources:read", "items:write"]]) {
        const error = await refusal(admin.createKey({ kind: "live", scopes }));
        expect(error.code).toBe(Code.PermissionDenied);
        expect(error.rawMessage).toMatch(/cannot grant scope/);
      }
    });

    it("cannot mint a researcher's user key or a worker key", async () => {
      const admin = f.client(await f.adminJwt("acme"));
      expect((await refusal(admin.createKey({ kind: "user" }))).code).toBe(Code.PermissionDenied);
      const worker = await refusal(admin.createKey({ kind: "worker", binding: RUN }));
      expect(worker.code).toBe(Code.PermissionDenied);
    });

    // The owner becomes x-auth-subject upstream: naming someone else's
    // subject would mint a key announced as that person.
    it("cannot name another owner: 403 naming the field, and nothing is minted", async () => {
      const token = await f.adminJwt("acme");
      for (const kind of ["live", "agent"]) {
        const error = await refusal(f.client(token).createKey({ kind, owner: "auth0|ada" }));
        expect(error.code).toBe(Code.PermissionDenied);
        expect(error.rawMessage).toMatch(/^owner: only keys:admin may name another owner/);
      }
      const answer = await rest(f, "POST", "/v1/admin/keys", {
        token,
        body: { name: "impostor", owner: "auth0|ada" },
      });
      expect([answer.status, answer.body.error]).toEqual([403, "permission_denied"]);
      expect(answer.body.message).toMatch(/^owner: /);
      const owners = (await f.client(f.rootToken).listKeys({ owner: "auth0|ada" })).keys;
      expect(owners).toEqual([]);
    });

    it("may name itself as the owner, which is the default anyway", async () => {
      const admin = f.client(await f.adminJwt("acme"));
      const named = await admin.createKey({ kind: "agent", owner: "admin|acme" });
      expect(named.key?.owner).toBe("admin|acme");
      expect((await admin.createKey({ kind: "agent" })).key?.owner).toBe("admin|acme");
    });

    it("cannot mint keys in another tenant", async () => {
      const admin = f.client(await f.adminJwt("acme"));
      const error = await refusal(admin.createKey({ kind: "live", tenant: "globex" }));
      expect(error.code).toBe(Code.PermissionDenied);
      expect((await f.client(f.rootToken).listKeys({ tenant: "globex" })).keys).toEqual([]);
    });
  });

  describe("a researcher", () => {
    it("cannot grant itself a scope its token does not carry, nor keys:admin", async () => {
      const researcher = f.client(await f.researcherJwt("auth0|mallory", ["sources:read"]));
      for (const scopes of [["runs:apply"], ["keys:admin"], ["sources:read", "sources:write"]]) {
        const error = await refusal(researcher.createKey({ scopes }));
        expect(error.code).toBe(Code.PermissionDenied);
      }
    });

    it("cannot mint a key owned by someone else", async () => {
      const researcher = f.client(await f.researcherJwt("auth0|mallory"));
      for (const kind of ["user", "agent"]) {
        const error = await refusal(researcher.createKey({ kind, owner: "auth0|ada" }));
        expect(error.code).toBe(Code.PermissionDenied);
        expect(error.rawMessage).toMatch(/^owner: .*for itself only/);
      }
    });

    it("cannot mint live or worker keys, nor keys in a tenant", async () => {
      const researcher = f.client(await f.researcherJwt("auth0|mallory"));
      expect((await refusal(researcher.createKey({ kind: "live" }))).code).toBe(
        Code.PermissionDenied,
      );
      expect((await refusal(researcher.createKey({ kind: "worker", binding: RUN }))).code).toBe(
        Code.PermissionDenied,
      );
      expect((await refusal(researcher.createKey({ tenant: "acme" }))).code).toBe(
        Code.PermissionDenied,
      );
    });

    // OIDC subjects are unique per issuer only: the researchers' Auth0 tenant
    // may hand out a `sub` that equals an admin-portal subject. Such a
    // researcher must not be answered with the admin's idempotent create,
    // which carries the admin's key and its secret.
    it("cannot replay another issuer's idempotent create by sharing its subject", async () => {
      const request = { kind: "agent", scopes: ["sources:read"], idempotencyKey: "deploy-1" };
      const admins = await f.client(await f.adminJwt("acme")).createKey(request);
      const lookalike = await f.researcherJwt("admin|acme", ["sources:read"]);
      // Refusing the request or minting the researcher its own key are both fine.
      const answer = await f
        .client(lookalike)
        .createKey(request)
        .catch((error: unknown) => ConnectError.from(error));
      if (answer instanceof ConnectError) return;
      expect(answer.secret).not.toBe(admins.secret);
      expect(answer.key?.id).not.toBe(admins.key?.id);
      expect(answer.key?.tenant).not.toBe("acme");
    });
  });

  describe("a data-plane key without keys:* scopes", () => {
    it("is refused with PermissionDenied for every kind", async () => {
      const plain = await f.client(f.rootToken).createKey({
        kind: "live",
        tenant: "acme",
        scopes: ["sources:read", "sources:write"],
      });
      expect(await decide(f.check, plain.secret)).toBe("allow");
      for (const kind of ["live", "user", "agent", "worker"]) {
        const request = kind === "worker" ? { kind, binding: RUN } : { kind };
        const error = await refusal(f.client(plain.secret).createKey(request));
        expect(error.code).toBe(Code.PermissionDenied);
      }
    });
  });

  describe("a keys:provision key", () => {
    let provisioner: string;
    beforeAll(async () => {
      const created = await f.client(f.rootToken).createKey({
        kind: "live",
        tenant: "acme",
        scopes: ["keys:provision", "runs:read"],
      });
      provisioner = created.secret;
    });

    it("may mint worker keys but not live, user or agent keys", async () => {
      const client = f.client(provisioner);
      await expect(client.createKey({ kind: "worker", binding: RUN })).resolves.toBeDefined();
      for (const kind of ["live", "user", "agent"]) {
        expect((await refusal(client.createKey({ kind }))).code).toBe(Code.PermissionDenied);
      }
      // Without a kind it would mint a live key: refused as well.
      expect((await refusal(client.createKey({}))).code).toBe(Code.PermissionDenied);
    });

    it("only grants worker keys scopes it holds itself", async () => {
      const client = f.client(provisioner);
      for (const scopes of [["runs:apply"], ["runs:read", "items:write"]]) {
        const error = await refusal(client.createKey({ kind: "worker", binding: RUN, scopes }));
        expect(error.code).toBe(Code.PermissionDenied);
      }
      // keys:* on a worker key is refused whoever asks, before who asks matters.
      const error = await refusal(
        client.createKey({ kind: "worker", binding: RUN, scopes: ["keys:provision"] }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^scopes: a worker key cannot hold "keys:provision"/);
    });

    it("cannot name another owner for the worker keys it mints", async () => {
      const error = await refusal(
        f.client(provisioner).createKey({ kind: "worker", binding: RUN, owner: "auth0|ada" }),
      );
      expect(error.code).toBe(Code.PermissionDenied);
      expect(error.rawMessage).toMatch(/^owner: /);
    });

    it("only mints worker keys in its own tenant", async () => {
      const error = await refusal(
        f.client(provisioner).createKey({ kind: "worker", binding: RUN, tenant: "globex" }),
      );
      expect(error.code).toBe(Code.PermissionDenied);
    });
  });

  describe("a credential bound to a run", () => {
    // Worker keys never hold keys:* scopes; this one was written by an older
    // version that allowed it (the row is edited directly, as it would be on
    // disk), and the admin API must still refuse everything it asks.
    let worker: { id: string; secret: string };
    let sibling: { id: string; secret: string };
    const RUN_PATH = "/experiments/exp-1/variations/1/runs/r-1";
    beforeAll(async () => {
      const store = new KeyRepository(db);
      const mint = () => store.create({ kind: "worker", tenant: "acme", binding: RUN });
      const own = mint();
      const other = mint();
      worker = { id: own.key.id, secret: own.secret };
      sibling = { id: other.key.id, secret: other.secret };
      db.prepare("UPDATE keys SET scopes = 'keys:admin keys:provision' WHERE id = ?").run(
        worker.id,
      );
    });

    it("is refused every admin call, on its own run too, with PermissionDenied", async () => {
      const client = f.client(worker.secret);
      const calls: [string, () => Promise<unknown>][] = [
        ["CreateKey", () => client.createKey({ kind: "worker", binding: RUN })],
        ["CreateKey live", () => client.createKey({ kind: "live", scopes: ["keys:admin"] })],
        ["ListKeys", () => client.listKeys({})],
        ["GetKey", () => client.getKey({ id: worker.id })],
        ["RotateKey own", () => client.rotateKey({ id: worker.id })],
        ["RotateKey sibling", () => client.rotateKey({ id: sibling.id })],
        ["RevokeKey", () => client.revokeKey({ id: sibling.id })],
        ["RevokeRunKeys", () => client.revokeRunKeys({ binding: RUN })],
      ];
      for (const [name, call] of calls) {
        const error = await refusal(call());
        expect(error.code, name).toBe(Code.PermissionDenied);
        expect(error.rawMessage, name).toMatch(/bound to a run/);
      }
      const answer = await rest(f, "GET", "/v1/admin/keys", { token: worker.secret });
      expect(answer.status).toBe(403);
      expect(await decide(f.check, worker.secret, RUN_PATH)).toBe("allow");
      expect(await decide(f.check, sibling.secret, RUN_PATH)).toBe("allow");
    });
  });

  it("audits every refused attempt with the caller and its outcome, and never a secret", async () => {
    const researcher = await f.researcherJwt("auth0|eve", ["sources:read"]);
    await refusal(f.client(researcher).createKey({ scopes: ["keys:admin"] }));
    expect(audit.list({}, 1)[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#auth0\|eve$/),
      action: "CreateKey",
      keyId: null,
      tenant: null,
      outcome: "PermissionDenied",
      detail: expect.stringMatching(/keys:admin/),
    });
    const rows = audit.list({}, 10_000);
    expect(rows.filter((row) => row.outcome === "PermissionDenied").length).toBeGreaterThan(10);
    expect(JSON.stringify(rows)).not.toMatch(/[0-9a-f]{48}|eyJ/);
  });
});
