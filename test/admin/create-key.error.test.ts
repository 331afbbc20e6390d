import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, refusal, rest, startAdminFixture } from "../helpers/admin.js";

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
    // DESIGN: a typo in a scope must not mint a useless key.
    {
      name: "a scope neither the policy nor the config names",
      request: { kind: "live", scopes: ["sources:read", "sorces:write"] },
      message: /^scopes: "sorces:write" is not a scope keyward knows/,
    },
    {
      name: "an expiresAt already past",
      request: { kind: "live", expiresAt: timestampFromMs(Date.parse("2020-01-01T00:00:00Z")) },
      message: /^expiresAt: 2020-01-01T00:00:00.000Z is already past/,
    },
    // DESIGN: worker keys never hold keys:* scopes, whoever mints them.
    {
      name: "a worker key holding keys:provision",
      request: {
        kind: "worker",
        binding: { experiment: "e1", variation: "1", run: "r1" },
        scopes: ["runs:read", "keys:provision"],
      },
      message: /^scopes: a worker key cannot hold "keys:provision"/,
    },
    {
      name: "a worker key holding keys:admin",
      request: {
        kind: "worker",
        binding: { experiment: "e1", variation: "1", run: "r1" },
        scopes: ["keys:admin"],
      },
      message: /^scopes: a worker key cannot hold "keys:admin"/,
    },
    // The identity rule: name, owner and tenant are text without control
    // characters, line or paragraph separators or unpaired surrogates, and
    // at most 256 characters.
    ...(["name", "owner", "tenant"] as const).flatMap((field) => [
      {
        name: `a newline in ${field}`,
        request: { kind: "live", [field]: "acme\nx-auth-tenant: globex" },
        message: new RegExp(`^${field}: contains a control character \\(U\\+000A\\)`),
      },
      {
        name: `a NUL in ${field}`,
        request: { kind: "live", [field]: "a\u0000b" },
        message: new RegExp(`^${field}: contains a control character \\(U\\+0000\\)`),
      },
      {
        name: `a C1 control (NEL) in ${field}`,
        request: { kind: "live", [field]: "a\u0085b" },
        message: new RegExp(`^${field}: contains a control character \\(U\\+0085\\)`),
      },
      {
        name: `DEL in ${field}`,
        request: { kind: "live", [field]: "a\u007fb" },
        message: new RegExp(`^${field}: contains a control character \\(U\\+007F\\)`),
      },
      {
        name: `a line separator in ${field}`,
        request: { kind: "live", [field]: "a\u2028b" },
        message: new RegExp(`^${field}: contains a line or paragraph separator \\(U\\+2028\\)`),
      },
      {
        name: `a paragraph separator in ${field}`,
        request: { kind: "live", [field]: "a\u2029b" },
        message: new RegExp(`^${field}: contains a line or paragraph separator \\(U\\+2029\\)`),
      },
      {
        name: `257 characters in ${field}`,
        request: { kind: "live", [field]: "研".repeat(257) },
        message: new RegExp(`^${field}: is longer than 256 characters`),
      },
    ]),
  ];

  for (const { name, request, message } of cases) {
    it(`answers InvalidArgument, saying what is wrong, for ${name}`, async () => {
      const error = await refusal(f.client(f.rootToken).createKey({ tenant: TENANT, ...request }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
    });

    // A client that retries safely sends an idempotency key with every
    // create; a malformed request must still be the caller's error, not ours.
    it(`answers InvalidArgument for ${name} sent with an idempotency key too`, async () => {
      const error = await refusal(
        f.client(f.rootToken).createKey({
          tenant: TENANT,
          ...request,
          idempotencyKey: `idem-${name}`,
        }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(message);
    });
  }

  it("refuses identity values that are not text over gRPC too, naming the field", async () => {
    for (const field of ["name", "owner", "tenant"]) {
      const error = await refusal(
        f.grpcClient(f.rootToken).createKey({ kind: "live", [field]: "a\r\nb" }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toBe(`${field}: contains a control character (U+000D)`);
    }
  });

  it("accepts identity values of 256 characters, and any text: CJK, emoji, accents", async () => {
    const root = f.client(f.rootToken);
    const values = ["研".repeat(256), "研究者 🧪 Zoë", "x".repeat(256)];
    for (const value of values) {
      const created = await root.createKey({
        kind: "live",
        name: value,
        owner: value,
        tenant: value,
      });
      expect(created.key).toMatchObject({ name: value, owner: value, tenant: value });
    }
  });

  describe("over REST", () => {
    it("answers 400 naming the field for an identity value, a scope or an expiry it refuses", async () => {
      const cases: [string, Record<string, unknown>, RegExp][] = [
        ["/v1/admin/keys", { owner: "ada\nx" }, /^owner: contains a control character \(U\+000A\)/],
        ["/v1/admin/keys", { tenant: "a\u2028b" }, /^tenant: contains a line or paragraph/],
        ["/v1/admin/keys", { name: "x".repeat(257) }, /^name: is longer than 256 characters/],
        ["/api-keys", { description: "runner\u0007" }, /^description: contains a control/],
        // Only JSON can carry an unpaired surrogate (as an escape); UTF-8 cannot.
        ["/v1/admin/keys", { owner: "a\ud800b" }, /^owner: contains an unpaired surrogate/],
        ["/api-keys", { name: "\udfffx" }, /^name: contains an unpaired surrogate \(U\+DFFF\)/],
        ["/v1/admin/keys", { scopes: ["runs:aply"] }, /^scopes: "runs:aply" is not a scope/],
        ["/api-keys", { scopes: ["runs:aply"] }, /^scopes: "runs:aply" is not a scope/],
        [
          "/v1/admin/keys",
          { expiresAt: "2025-01-01T00:00:00Z" },
          /^expiresAt: 2025-01-01T00:00:00.000Z is already past/,
        ],
        [
          "/api-keys",
          { expiresAt: "2025-01-01T00:00:00Z" },
          /^expiresAt: 2025-01-01T00:00:00.000Z is already past/,
        ],
      ];
      for (const [path, body, message] of cases) {
        const answer = await rest(f, "POST", path, { token: f.rootToken, body });
        expect([answer.status, answer.body.error], `${path} ${JSON.stringify(body)}`).toEqual([
          400,
          "invalid_argument",
        ]);
        expect(answer.body.message).toMatch(message);
      }
    });

    it("answers 400 naming the field for an unpaired surrogate sent as Connect JSON", async () => {
      const answer = await rest(f, "POST", "/keyward.admin.v1.KeyService/CreateKey", {
        token: f.rootToken,
        body: { kind: "live", tenant: "a\ud800b" },
      });
      expect(answer.status).toBe(400);
      expect(answer.body.code).toBe("invalid_argument");
      expect(answer.body.message).toMatch(/CreateKeyRequest\.tenant.*invalid UTF8/);
    });

    it("answers 415 for a body that is not labelled JSON, and mints nothing", async () => {
      const before = (await f.client(f.rootToken).listKeys({ pageSize: 1000 })).keys.length;
      const cases: [string, string, string][] = [
        ["/v1/admin/keys", "text/plain", '{"name":"x"}'],
        ["/v1/admin/keys", "application/xml", "<key/>"],
        ["/api-keys", "multipart/form-data; boundary=x", '{"description":"x"}'],
        // curl -d labels its body application/x-www-form-urlencoded: a real form is refused.
        ["/v1/admin/keys", "application/x-www-form-urlencoded", "name=x&scopes=sources:read"],
        ["/api/v1/admin/keys/0123456789abcdef/rotate", "text/plain", '{"graceSeconds":1}'],
      ];
      for (const [path, contentType, body] of cases) {
        const answer = await rest(f, "POST", path, { token: f.rootToken, body, contentType });
        expect([answer.status, answer.body.error], `${path} ${contentType}`).toEqual([
          415,
          "unsupported_media_type",
        ]);
        expect(answer.body.message).toMatch(/application\/json/);
      }
      const after = (await f.client(f.rootToken).listKeys({ pageSize: 1000 })).keys.length;
      expect(after).toBe(before);
    });

    it("accepts application/json with parameters, and a JSON body sent without a label", async () => {
      for (const contentType of ["application/json; charset=utf-8", "Application/JSON", null]) {
        const answer = await rest(f, "POST", "/v1/admin/keys", {
          token: f.rootToken,
          body: { name: `labelled ${contentType}`, scopes: ["sources:read"] },
          contentType,
        });
        expect(answer.status, String(contentType)).toBe(201);
      }
    });
  });

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
