import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const IDENTITY = [
  "x-auth-kind",
  "x-auth-subject",
  "x-auth-key-id",
  "x-auth-tenant",
  "x-auth-scopes",
];

/** One raw HTTP exchange (node:http, so that duplicate headers can be sent). */
interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string | string[]> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString("utf8"),
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
/** Traefik ForwardAuth: X-Forwarded-Method/Uri/Host, sent to /authz. */
const traefik = (method: string, uri: string) => ({
  "x-forwarded-method": method,
  "x-forwarded-uri": uri,
  "x-forwarded-host": "api.example.com",
  "x-forwarded-proto": "https",
});
/** nginx auth_request: X-Original-Method/URI, sent to /authz. */
const nginx = (method: string, uri: string) => ({
  "x-original-method": method,
  "x-original-uri": uri,
});

describe("forward-auth on the HTTP port", () => {
  let kw: TestKeyward;
  let port: number;
  let readOnly: { secret: string; id: string };
  let revoked: string;

  beforeAll(async () => {
    kw = await startTestKeyward();
    port = kw.ports.http;
    const minted = kw.store.create({
      kind: "live",
      tenant: "acme",
      owner: "ci-importer",
      scopes: ["sources:read"],
    });
    readOnly = { secret: minted.secret, id: minted.key.id };
    const gone = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    kw.store.revoke(gone.key.id);
    revoked = gone.secret;
  });
  afterAll(async () => {
    await kw.close();
  });

  const expectDeny = (answer: Answer, status: number, code: string, wwwAuthenticate: string) => {
    expect(answer.status).toBe(status);
    expect(answer.headers["content-type"]).toBe("application/json");
    expect(answer.headers["www-authenticate"]).toBe(wwwAuthenticate);
    expect(answer.headers["cache-control"]).toBe("no-store");
    const body = JSON.parse(answer.body) as Record<string, string>;
    expect(body).toEqual({
      error: code,
      message: expect.any(String),
      decision_id: expect.stringMatching(UUID),
    });
    // The same body in a header, for nginx, which cannot read the auth body.
    expect(answer.headers["x-keyward-deny-body"]).toBe(answer.body);
    for (const name of IDENTITY) expect(answer.headers[name]).toBeUndefined();
    return body;
  };

  describe("with Traefik's headers", () => {
    it("allows a valid key with 200, an empty body and the identity headers", async () => {
      const answer = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...traefik("GET", "/api/v1/sources?page=2"),
      });
      expect(answer.status).toBe(200);
      expect(answer.body).toBe("");
      expect(answer.headers["x-auth-kind"]).toBe("live");
      expect(answer.headers["x-auth-subject"]).toBe("ci-importer");
      expect(answer.headers["x-auth-key-id"]).toBe(readOnly.id);
      expect(answer.headers["x-auth-tenant"]).toBe("acme");
      expect(answer.headers["x-auth-scopes"]).toBe("sources:read");
      expect(answer.headers["x-envoy-auth-headers-to-remove"]).toBeUndefined();
    });

    it("denies a revoked key with 401 key_revoked", async () => {
      const answer = await send(port, "GET", "/authz", {
        ...bearer(revoked),
        ...traefik("GET", "/api/v1/sources"),
      });
      expectDeny(answer, 401, "key_revoked", 'Bearer realm="keyward", error="key_revoked"');
    });

    it("denies a missing scope with 403 insufficient_scope naming the required scope", async () => {
      const answer = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...traefik("POST", "/api/v1/sources"),
      });
      expectDeny(
        answer,
        403,
        "insufficient_scope",
        'Bearer realm="keyward", error="insufficient_scope", scope="sources:write"',
      );
    });

    it("denies a request without a credential with 401 missing_credential", async () => {
      const answer = await send(port, "GET", "/authz", traefik("GET", "/api/v1/sources"));
      expectDeny(answer, 401, "missing_credential", 'Bearer realm="keyward"');
    });
  });

  describe("with nginx's headers", () => {
    it("allows and denies on the original method and URI", async () => {
      const ok = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...nginx("GET", "/api/v1/sources/src_1"),
      });
      expect(ok.status).toBe(200);
      const denied = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...nginx("DELETE", "/api/v1/sources/src_1"),
      });
      expectDeny(
        denied,
        403,
        "insufficient_scope",
        'Bearer realm="keyward", error="insufficient_scope", scope="sources:write"',
      );
    });

    it("accepts nginx and Traefik headers together only when they describe the same request", async () => {
      const same = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...nginx("get", "/api/v1/sources"),
        ...traefik("GET", "/api/v1/sources"),
      });
      expect(same.status).toBe(200);
      // Either family may have come from the client; keyward cannot tell
      // which one the proxy set, so it judges neither.
      const differ = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...nginx("DELETE", "/api/v1/sources/src_1"),
        ...traefik("GET", "/api/v1/sources"),
      });
      expectDeny(
        differ,
        403,
        "insufficient_scope",
        'Bearer realm="keyward", error="insufficient_scope"',
      );
      expect(kw.logs.text).toContain("nginx and Traefik describe different requests");
    });
  });

  describe("with Envoy http_service's path prefix", () => {
    it("judges the original method and the path after /authz, ignoring the query string", async () => {
      const ok = await send(port, "GET", "/authz/api/v1/sources?page=2", bearer(readOnly.secret));
      expect(ok.status).toBe(200);
      expect(ok.headers["x-auth-key-id"]).toBe(readOnly.id);
      const denied = await send(port, "POST", "/authz/api/v1/sources", bearer(readOnly.secret));
      expectDeny(
        denied,
        403,
        "insufficient_scope",
        'Bearer realm="keyward", error="insufficient_scope", scope="sources:write"',
      );
      const gone = await send(port, "GET", "/authz/api/v1/sources", bearer(revoked));
      expectDeny(gone, 401, "key_revoked", 'Bearer realm="keyward", error="key_revoked"');
    });

    it("names forged identity headers in x-envoy-auth-headers-to-remove, and overwrites the rest", async () => {
      const { secret } = kw.store.create({ kind: "agent", scopes: ["sources:read"] });
      const answer = await send(port, "GET", "/authz/api/v1/sources", {
        ...bearer(secret),
        "x-auth-subject": "admin",
        "x-auth-role": "root",
        "x-auth-tenant": "evil",
      });
      expect(answer.status).toBe(200);
      expect(answer.headers["x-auth-subject"]).not.toBe("admin");
      // The agent key has no tenant: keyward sends it empty, overwriting the
      // forged one; x-auth-role is not one of keyward's, so it must go.
      expect(answer.headers["x-auth-tenant"]).toBe("");
      expect(answer.headers["x-envoy-auth-headers-to-remove"]).toBe("x-auth-role");
    });

    it("answers HEAD with the decision's status and headers, without a body", async () => {
      const denied = await send(port, "HEAD", "/authz/api/v1/sources", bearer(revoked));
      expect(denied.status).toBe(401);
      expect(denied.headers["www-authenticate"]).toBe(
        'Bearer realm="keyward", error="key_revoked"',
      );
      expect(denied.body).toBe("");
    });

    it("refuses ambiguous paths that the upstream might resolve differently", async () => {
      for (const path of ["/authz/api/v1/sources/%2e%2e/x", "/authz/api/v1/../v1/sources"]) {
        const answer = await send(port, "GET", path, bearer(readOnly.secret));
        expect(answer.status, path).toBe(403);
      }
    });

    it("denies when the proxy's path and headers describe different requests", async () => {
      // The path alone would be allowed; keyward cannot tell which of the
      // two the proxy meant (nor which one a client added), so neither.
      const answer = await send(port, "GET", "/authz/api/v1/sources", {
        ...bearer(readOnly.secret),
        ...nginx("DELETE", "/api/v1/sources/src_1"),
      });
      expect(answer.status).toBe(403);
      expect(kw.logs.text).toContain("Envoy http_service and nginx describe different requests");
    });
  });

  describe("fails closed", () => {
    it("denies a valid key when the original request is not described at all", async () => {
      const answer = await send(port, "GET", "/authz", bearer(readOnly.secret));
      const body = expectDeny(
        answer,
        403,
        "insufficient_scope",
        'Bearer realm="keyward", error="insufficient_scope"',
      );
      const line = kw.logs.records.find((record) => record.decision_id === body.decision_id);
      expect(line?.reason).toMatch(/^no original request/);
      expect(line?.name).toBe("http");
    });

    it.each([
      ["a URI without a method", { "x-original-uri": "/api/v1/sources" }],
      ["a method without a URI", { "x-forwarded-method": "GET" }],
      ["an empty URI", { "x-original-method": "GET", "x-original-uri": "" }],
    ])("denies %s", async (_label, headers) => {
      const answer = await send(port, "GET", "/authz", { ...bearer(readOnly.secret), ...headers });
      expect(answer.status).toBe(403);
    });

    it("denies a URI header sent twice with different values", async () => {
      const answer = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        "x-original-method": "GET",
        "x-original-uri": ["/api/v1/sources", "/experiments/e/variations/v/runs/r"],
      });
      expect(answer.status).toBe(403);
    });

    it.each([
      ["nginx", "/api/v1/sources/%zz"],
      ["Traefik", "/api/v1/sources/%zz"],
      ["Envoy", "/api/v1/sources/%zz"],
      ["nginx", "/api/v1/sources/%ff"],
      ["nginx", "/api/v1/sources/s1#/../../admin"],
      ["Traefik", "/api/v1/sources#x"],
      ["Traefik", "/api/v1/sources/a%2Fb"],
    ])(
      "denies a %s target %s keyward cannot read with 403, logged at info, never 503",
      async (proxy, uri) => {
        const headers =
          proxy === "nginx" ? nginx("GET", uri) : proxy === "Traefik" ? traefik("GET", uri) : {};
        const target = proxy === "Envoy" ? `/authz${uri}` : "/authz";
        const answer = await send(port, "GET", target, { ...bearer(readOnly.secret), ...headers });
        const body = expectDeny(
          answer,
          403,
          "insufficient_scope",
          'Bearer realm="keyward", error="insufficient_scope"',
        );
        const line = kw.logs.records.find((record) => record.decision_id === body.decision_id);
        expect(line).toMatchObject({ level: 30, name: "http" });
        expect(String(line?.reason)).toMatch(/percent-decoded|raw #|ambiguous/);
        expect(kw.logs.records.filter((record) => Number(record.level) >= 50)).toEqual([]);
      },
    );

    it("treats two authorization headers as an invalid credential, not a choice", async () => {
      const answer = await send(port, "GET", "/authz/api/v1/sources", {
        authorization: [`Bearer ${readOnly.secret}`, `Bearer ${revoked}`],
      });
      expectDeny(answer, 401, "invalid_token", 'Bearer realm="keyward", error="invalid_token"');
    });

    it("takes required scopes from the policy only, whatever the client sends", async () => {
      const answer = await send(port, "GET", "/authz", {
        ...bearer(readOnly.secret),
        ...traefik("POST", "/api/v1/sources"),
        required_scopes: "",
        "x-required-scopes": "",
        "x-auth-scopes": "sources:write",
        "x-envoy-context-extensions": "required_scopes=",
      });
      expect(answer.status).toBe(403);
      // A route no rule names is denied, even though the key is valid.
      const unknown = await send(port, "GET", "/authz/internal/admin", bearer(readOnly.secret));
      expect(unknown.status).toBe(403);
    });

    it("answers oversized headers with 431 before judging anything", async () => {
      const answer = await send(port, "GET", "/authz/api/v1/sources", {
        ...bearer(readOnly.secret),
        "x-padding": "a".repeat(20_000),
      });
      expect(answer.status).toBe(431);
    });

    it("never writes the credential to the log", async () => {
      await send(port, "GET", "/authz/api/v1/sources", bearer(revoked));
      expect(kw.logs.text).not.toContain(revoked);
      expect(kw.logs.text).not.toContain(readOnly.secret);
    });
  });

  it("keeps /healthz, /readyz and 404 for other paths; /authzx is not forward-auth", async () => {
    expect((await send(port, "GET", "/healthz")).status).toBe(200);
    expect((await send(port, "GET", "/readyz")).status).toBe(200);
    expect((await send(port, "GET", "/authzx")).status).toBe(404);
    expect((await send(port, "POST", "/healthz")).status).toBe(405);
  });
});

describe("forward-auth with headers.strip_authorization", () => {
  it("asks Envoy to remove the authorization header too", async () => {
    const kw = await startTestKeyward({ headers: { strip_authorization: true } });
    try {
      const { secret } = kw.store.create({ kind: "live", tenant: "t", scopes: ["sources:read"] });
      const answer = await send(kw.ports.http, "GET", "/authz/api/v1/sources", bearer(secret));
      expect(answer.status).toBe(200);
      expect(answer.headers["x-envoy-auth-headers-to-remove"]).toBe("authorization");
    } finally {
      await kw.close();
    }
  });
});

describe("forward-auth: every identity header on every allow (issue 18 point 10)", () => {
  let kw: TestKeyward;
  let dir: string;
  beforeAll(async () => {
    // Any valid credential passes, so a key without scopes is allowed.
    dir = mkdtempSync(join(tmpdir(), "keyward-fa-policy-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(policy, "default: authenticated\nrules: []\n");
    kw = await startTestKeyward({ policy });
  });
  afterAll(async () => {
    await kw.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("sends all five identity headers on every allow, empty for a key without tenant or scopes", async () => {
    const { secret, key } = kw.store.create({ kind: "agent", scopes: [] });
    for (const [target, headers] of [
      ["/authz/api/v1/anything", {}],
      ["/authz", nginx("GET", "/api/v1/anything")],
      ["/authz", traefik("GET", "/api/v1/anything")],
    ] as const) {
      const answer = await send(kw.ports.http, "GET", target, { ...bearer(secret), ...headers });
      expect(answer.status, target).toBe(200);
      expect(
        IDENTITY.map((name) => [name, answer.headers[name]]),
        target,
      ).toEqual([
        ["x-auth-kind", "agent"],
        ["x-auth-subject", key.id],
        ["x-auth-key-id", key.id],
        ["x-auth-tenant", ""],
        ["x-auth-scopes", ""],
      ]);
    }
  });
});
