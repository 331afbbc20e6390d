import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/keys/db.js";
import { allowance, denial, EnvoyCheckClient, structToJson } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

const HOUR = 3_600_000;

describe("ext_authz Check on API keys", () => {
  let kw: TestKeyward;
  let client: EnvoyCheckClient;

  beforeAll(async () => {
    kw = await startTestKeyward();
    client = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    client.close();
    await kw.close();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const anyRoute = { required_scopes: "" };

  it("denies a request without a credential with 401 missing_credential and no error attribute", async () => {
    const d = denial(await client.check({ path: "/api/v1/sources" }));
    expect(d.grpcCode).toBe(16);
    expect(d.httpStatus).toBe("Unauthorized");
    expect(d.body.error).toBe("missing_credential");
    expect(d.body.decision_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(d.headers["www-authenticate"]).toBe('Bearer realm="keyward"');
    expect(d.headers["content-type"]).toBe("application/json");
  });

  it.each([
    ["a Basic credential", "Basic dXNlcjpwYXNz"],
    ["a bare scheme", "Bearer"],
    ["a truncated key", "Bearer sk_live_0123456789abcdef_abc"],
    ["an upper-case hex key", `Bearer sk_live_0123456789ABCDEF_${"a".repeat(48)}`],
    ["an unknown key kind", `Bearer sk_test_0123456789abcdef_${"a".repeat(48)}`],
    ["a random word", "Bearer hello"],
    ["two tokens", `Bearer a.b.c Bearer d.e.f`],
    ["an oversized token", `Bearer ${"a".repeat(20_000)}`],
  ])("denies %s with 401 invalid_token", async (_label, authorization) => {
    const d = denial(
      await client.check({ headers: { authorization }, contextExtensions: anyRoute }),
    );
    expect(d.grpcCode).toBe(16);
    expect(d.httpStatus).toBe("Unauthorized");
    expect(d.body.error).toBe("invalid_token");
    expect(d.headers["www-authenticate"]).toBe('Bearer realm="keyward", error="invalid_token"');
  });

  it("reads the bearer scheme case-insensitively", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: [] });
    const response = await client.check({
      headers: { authorization: `bEaReR ${secret}` },
      contextExtensions: anyRoute,
    });
    expect(response.status?.code).toBe(0);
  });

  it("answers an unknown id exactly like a wrong secret, apart from the decision id", async () => {
    const { secret, key } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const wrongSecret = `${key.keyLookup}_${"0".repeat(48)}`;
    const unknownId = `sk_live_${"f".repeat(16)}_${secret.slice(-48)}`;
    const a = await client.check({ path: "/api/v1/sources", headers: bearer(wrongSecret) });
    const b = await client.check({ path: "/api/v1/sources", headers: bearer(unknownId) });
    const strip = (r: typeof a) =>
      JSON.parse(JSON.stringify(r).replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "ID"));
    expect(denial(a).body.error).toBe("invalid_token");
    expect(strip(a)).toEqual(strip(b));
    expect(denial(a).body.decision_id).not.toBe(denial(b).body.decision_id);
  });

  it("denies a revoked key with 401 key_revoked", async () => {
    const { secret, key } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    expect(
      (await client.check({ path: "/api/v1/sources", headers: bearer(secret) })).status?.code,
    ).toBe(0);
    kw.store.revoke(key.id);
    const d = denial(await client.check({ path: "/api/v1/sources", headers: bearer(secret) }));
    expect([d.grpcCode, d.httpStatus, d.body.error]).toEqual([16, "Unauthorized", "key_revoked"]);
    expect(d.headers["www-authenticate"]).toBe('Bearer realm="keyward", error="key_revoked"');
  });

  it("does not reveal that a key is revoked to someone without its secret", async () => {
    const { key } = kw.store.create({ kind: "live" });
    kw.store.revoke(key.id);
    const d = denial(
      await client.check({
        headers: bearer(`${key.keyLookup}_${"1".repeat(48)}`),
        contextExtensions: anyRoute,
      }),
    );
    expect(d.body.error).toBe("invalid_token");
  });

  it("denies a key past expiresAt with 401 key_expired", async () => {
    const { secret } = kw.store.create({ kind: "agent", expiresAt: Date.now() - 1000 });
    const d = denial(await client.check({ headers: bearer(secret), contextExtensions: anyRoute }));
    expect([d.grpcCode, d.body.error]).toEqual([16, "key_expired"]);
  });

  it("stops the old secret at once after rotation and allows the new one", async () => {
    const first = kw.store.create({ kind: "live" });
    const rotated = kw.store.rotate(first.key.id);
    expect(rotated?.key.id).toBe(first.key.id);
    expect(
      denial(await client.check({ headers: bearer(first.secret), contextExtensions: anyRoute }))
        .body.error,
    ).toBe("invalid_token");
    const ok = await client.check({
      headers: bearer(rotated?.secret ?? ""),
      contextExtensions: anyRoute,
    });
    expect(ok.status?.code).toBe(0);
  });

  it("allows a valid key with identity headers that overwrite spoofed ones and removes other x-auth-* headers", async () => {
    const expiresAt = Date.now() + HOUR;
    const { secret, key } = kw.store.create({
      kind: "live",
      tenant: "acme",
      owner: "ci-importer",
      scopes: ["sources:read", "items:write"],
      expiresAt,
    });
    const response = await client.check({
      path: "/api/v1/sources",
      headers: {
        ...bearer(secret),
        "x-auth-subject": "admin",
        "x-auth-tenant": "evil",
        "x-auth-role": "root",
        "x-auth-extra": "1",
        "x-request-id": "keep-me",
      },
    });
    const a = allowance(response);
    expect(a.headers).toEqual({
      "x-auth-kind": "live",
      "x-auth-subject": "ci-importer",
      "x-auth-key-id": key.id,
      "x-auth-tenant": "acme",
      "x-auth-scopes": "sources:read items:write",
    });
    for (const option of a.options) {
      expect(option.append_action).toBe("OVERWRITE_IF_EXISTS_OR_ADD");
      expect(option.append).toEqual({ value: false });
    }
    expect(a.remove.sort()).toEqual(["x-auth-extra", "x-auth-role"]);
    expect(structToJson(response.dynamic_metadata)).toEqual({
      decision_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      kind: "live",
      subject: "ci-importer",
      key_id: key.id,
      tenant: "acme",
      scopes: ["sources:read", "items:write"],
      expires_at: new Date(expiresAt).toISOString(),
    });
  });

  it("removes a spoofed identity header whose value the credential leaves empty", async () => {
    const { secret } = kw.store.create({ kind: "agent", scopes: [] });
    const a = allowance(
      await client.check({
        headers: { ...bearer(secret), "x-auth-tenant": "evil", "x-auth-scopes": "keys:admin" },
        contextExtensions: anyRoute,
      }),
    );
    expect(a.headers["x-auth-tenant"]).toBeUndefined();
    expect(a.remove.sort()).toEqual(["x-auth-scopes", "x-auth-tenant"]);
  });

  it("reads headers sent as header_map with raw_value bytes", async () => {
    const { secret } = kw.store.create({ kind: "user", owner: "ada", scopes: ["sources:read"] });
    const ok = await client.check({
      path: "/api/v1/sources",
      rawHeaders: [
        ["authorization", `Bearer ${secret}`],
        ["x-auth-subject", "mallory"],
        ["x-auth-other", "1"],
      ],
    });
    const a = allowance(ok);
    expect(a.headers["x-auth-subject"]).toBe("ada");
    expect(a.remove).toEqual(["x-auth-other"]);
    const missing = denial(
      await client.check({ path: "/api/v1/sources", rawHeaders: [["x-other", "1"]] }),
    );
    expect(missing.body.error).toBe("missing_credential");
  });

  it("rejects two authorization headers in header_map instead of picking one", async () => {
    const { secret } = kw.store.create({ kind: "live" });
    const d = denial(
      await client.check({
        rawHeaders: [
          ["authorization", `Bearer ${secret}`],
          ["authorization", `Bearer ${secret}`],
        ],
        contextExtensions: anyRoute,
      }),
    );
    expect(d.body.error).toBe("invalid_token");
  });

  it("rejects non-UTF-8 raw header bytes as invalid_token", async () => {
    const d = denial(
      await client.check({
        rawHeaders: [
          ["authorization", Buffer.from([0x42, 0x65, 0x61, 0x72, 0x65, 0x72, 0x20, 0xff, 0xfe])],
        ],
        contextExtensions: anyRoute,
      }),
    );
    expect(d.body.error).toBe("invalid_token");
  });

  describe("route requirements", () => {
    it("takes context_extensions.required_scopes over the policy file", async () => {
      const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
      // The policy would allow GET /api/v1/sources with sources:read; the route asks for more.
      const d = denial(
        await client.check({
          path: "/api/v1/sources",
          headers: bearer(secret),
          contextExtensions: { required_scopes: "sources:read  runs:apply" },
        }),
      );
      expect([d.grpcCode, d.httpStatus, d.body.error]).toEqual([
        7,
        "Forbidden",
        "insufficient_scope",
      ]);
      expect(d.headers["www-authenticate"]).toBe(
        'Bearer realm="keyward", error="insufficient_scope", scope="sources:read runs:apply"',
      );
    });

    it("treats present-but-empty required_scopes as any valid credential", async () => {
      const { secret } = kw.store.create({ kind: "live", scopes: [] });
      const response = await client.check({
        path: "/not/in/the/policy",
        headers: bearer(secret),
        contextExtensions: { required_scopes: "" },
      });
      expect(response.status?.code).toBe(0);
    });

    // The seed's scope table, as encoded in deploy/policy.yaml.
    it.each([
      ["GET", "/api/v1/sources", "sources:read"],
      ["GET", "/api/v1/sources/s1", "sources:read"],
      ["POST", "/api/v1/sources", "sources:write"],
      ["PATCH", "/api/v1/sources/s1", "sources:write"],
      ["POST", "/api/v1/sources/s1/deactivate", "sources:write"],
      ["GET", "/api/v1/sources/s1/items", "items:read"],
      ["PUT", "/api/v1/sources/s1/items/i1", "items:write"],
      ["POST", "/api/v1/sources/s1/items/batch", "items:write"],
      ["POST", "/api/v1/sources/s1/items/snapshot", "items:write"],
      ["DELETE", "/api/v1/sources/s1/items/i1", "items:write"],
      ["GET", "/api/v1/sources/s1/runs/r1", "runs:read"],
      ["GET", "/api/v1/sources/s1/runs/r1/diff", "runs:read"],
      ["GET", "/api/v1/sources/s1/generation", "runs:read"],
      ["POST", "/api/v1/sources/s1/runs", "runs:execute"],
      ["POST", "/api/v1/sources/s1/runs/r1/apply", "runs:apply"],
    ])("%s %s needs %s", async (method, path, scope) => {
      const all = [
        "sources:read",
        "sources:write",
        "items:read",
        "items:write",
        "runs:read",
        "runs:execute",
        "runs:apply",
      ];
      const holder = kw.store.create({ kind: "live", scopes: [scope] });
      const others = kw.store.create({ kind: "live", scopes: all.filter((s) => s !== scope) });
      const allowed = await client.check({
        method,
        path: `${path}?page=2`,
        headers: bearer(holder.secret),
      });
      expect(allowed.status?.code).toBe(0);
      const denied = denial(await client.check({ method, path, headers: bearer(others.secret) }));
      expect(denied.body.error).toBe("insufficient_scope");
      expect(denied.headers["www-authenticate"]).toContain(`scope="${scope}"`);
    });

    it("denies a route no rule matches with 403 insufficient_scope (default deny)", async () => {
      const { secret } = kw.store.create({
        kind: "live",
        scopes: ["sources:read", "sources:write"],
      });
      for (const [method, path] of [
        ["GET", "/api/v1/secret-admin"],
        ["DELETE", "/api/v1/sources"],
        ["GET", "/API/V1/SOURCES"],
        ["GET", "/api/v1/sources/../admin"],
        ["GET", "/api/v1/sources/a%2Fb"],
      ] as const) {
        const d = denial(await client.check({ method, path, headers: bearer(secret) }));
        expect(d.body.error, `${method} ${path}`).toBe("insufficient_scope");
        expect(d.headers["www-authenticate"]).toBe(
          'Bearer realm="keyward", error="insufficient_scope"',
        );
      }
    });

    it.each([
      "/api/v1/sources/%zz",
      "/api/v1/sources/%",
      "/api/v1/sources/%e9",
      "/api/v1/sources/a%ff%fe",
      "/api/v1/sources/s1#/../../admin",
    ])(
      "denies the undecodable or fragment path %s with 403 insufficient_scope, logged at info, never 503",
      async (path) => {
        const { secret, key } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
        const d = denial(await client.check({ method: "GET", path, headers: bearer(secret) }));
        expect([d.grpcCode, d.httpStatus, d.body.error]).toEqual([
          7,
          "Forbidden",
          "insufficient_scope",
        ]);
        const line = kw.logs.records.find((record) => record.decision_id === d.body.decision_id);
        expect(line).toMatchObject({ level: 30, key_id: key.id });
        expect(String(line?.reason)).toMatch(/percent-decoded|raw #/);
        expect(kw.logs.records.filter((record) => Number(record.level) >= 50)).toEqual([]);
      },
    );

    it("checks the credential before the route: a bad key on an unknown route is still 401", async () => {
      const d = denial(await client.check({ path: "/nowhere", headers: bearer("sk_live_nope") }));
      expect(d.body.error).toBe("invalid_token");
    });
  });

  describe("worker keys", () => {
    const run = { experiment: "exp-1", variation: "2", run: "7" };
    const runPath = "/experiments/exp-1/variations/2/runs/7";

    it("allows a worker key under its own run", async () => {
      const { secret } = kw.store.create({ kind: "worker", scopes: [], binding: run });
      for (const path of [runPath, `${runPath}/provision`, `${runPath}/metrics/loss?step=3`]) {
        const a = allowance(await client.check({ method: "POST", path, headers: bearer(secret) }));
        expect(a.headers["x-auth-kind"]).toBe("worker");
      }
    });

    it("denies a worker key outside its run with 403 insufficient_scope, whatever the route requires", async () => {
      const { secret } = kw.store.create({
        kind: "worker",
        scopes: ["sources:read"],
        binding: run,
      });
      for (const path of [
        "/experiments/exp-1/variations/2/runs/8",
        "/experiments/exp-1/variations/2/runs/77/x",
        "/experiments/exp-2/variations/2/runs/7",
        "/experiments/exp-1/variations/2/runs/7/../../runs/8",
        "/api/v1/sources",
      ]) {
        const d = denial(await client.check({ method: "GET", path, headers: bearer(secret) }));
        expect(d.body.error, path).toBe("insufficient_scope");
      }
      const viaRoute = denial(
        await client.check({
          path: "/anything",
          headers: bearer(secret),
          contextExtensions: anyRoute,
        }),
      );
      expect(viaRoute.body.error).toBe("insufficient_scope");
    });
  });

  it("answers 200 concurrent calls, each with its own correct decision", async () => {
    const good = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const revoked = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    kw.store.revoke(revoked.key.id);
    const calls = Array.from({ length: 200 }, (_, i) => {
      const pick = i % 4;
      const headers =
        pick === 0
          ? bearer(good.secret)
          : pick === 1
            ? bearer(revoked.secret)
            : pick === 2
              ? {}
              : bearer("x.y.z");
      return client.check({ path: "/api/v1/sources", headers }).then((r) => [pick, r] as const);
    });
    const expected = ["allow", "key_revoked", "missing_credential", "invalid_token"];
    for (const [pick, response] of await Promise.all(calls)) {
      const outcome = response.status?.code === 0 ? "allow" : denial(response).body.error;
      expect(outcome).toBe(expected[pick]);
    }
  });

  it("logs one line per deny with its decision id and key id, never the secret", async () => {
    const { secret, key } = kw.store.create({ kind: "live" });
    kw.store.revoke(key.id);
    const d = denial(await client.check({ headers: bearer(secret), contextExtensions: anyRoute }));
    const line = kw.logs.records.find((r) => r.decision_id === d.body.decision_id);
    expect(line).toMatchObject({ error: "key_revoked", key_id: key.id, name: "check" });
    expect(kw.logs.text).not.toContain(secret);
    expect(kw.logs.text).not.toContain(secret.slice(-48));
  });
});

describe("ext_authz Check when keyward cannot decide", () => {
  it("denies with 503 unavailable when the key table is unreadable, and logs the cause", async () => {
    const kw = await startTestKeyward();
    const client = new EnvoyCheckClient(kw.ports.check);
    try {
      const { secret } = kw.store.create({ kind: "live" });
      const other = openDatabase(kw.database);
      other.exec("DROP TABLE keys");
      other.close();
      const d = denial(
        await client.check({ headers: bearer(secret), contextExtensions: { required_scopes: "" } }),
      );
      expect([d.grpcCode, d.httpStatus, d.body.error]).toEqual([
        14,
        "ServiceUnavailable",
        "unavailable",
      ]);
      const line = kw.logs.records.find((r) => r.decision_id === d.body.decision_id);
      expect(line?.level).toBe(50);
      expect(JSON.stringify(line)).toContain("no such table");
    } finally {
      client.close();
      await kw.close();
    }
  });

  function bearer(token: string) {
    return { authorization: `Bearer ${token}` };
  }
});

describe("ext_authz Check with strip_authorization", () => {
  it("removes the authorization header before the request goes upstream", async () => {
    const kw = await startTestKeyward({ headers: { strip_authorization: true } });
    const client = new EnvoyCheckClient(kw.ports.check);
    try {
      const { secret } = kw.store.create({ kind: "live" });
      const a = allowance(
        await client.check({
          headers: { authorization: `Bearer ${secret}` },
          contextExtensions: { required_scopes: "" },
        }),
      );
      expect(a.remove).toContain("authorization");
    } finally {
      client.close();
      await kw.close();
    }
  });
});
