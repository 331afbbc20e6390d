import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AUDIENCE,
  claims,
  ISSUER,
  newSigningKey,
  signToken,
  unreachableUrl,
} from "../helpers/jwks.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";
import { freePort } from "../helpers/net.js";
import {
  type EchoedRequest,
  type EchoService,
  type RunningNginx,
  startEchoService,
  startNginx,
} from "../helpers/nginx.js";

// The shipped config, run by a real nginx in front of a real keyward and an
// echo service that reports the headers it received.
const CONFIG = "deploy/nginx/nginx.conf";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe("nginx auth_request with deploy/nginx/nginx.conf", () => {
  let kw: TestKeyward;
  let app: EchoService;
  let nginx: RunningNginx;

  beforeAll(async () => {
    kw = await startTestKeyward();
    app = await startEchoService();
    nginx = await startNginx(CONFIG, { keyward: kw.ports.http, app: app.port });
  });
  afterAll(async () => {
    await nginx?.stop();
    await app?.close();
    await kw?.close();
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const reached = async (response: Response): Promise<EchoedRequest> => {
    expect(response.status, nginx.errorLog()).toBe(200);
    return (await response.json()) as EchoedRequest;
  };

  it("lets a valid key through with keyward's identity headers and none the client forged", async () => {
    const { secret, key } = kw.store.create({
      kind: "live",
      tenant: "acme",
      owner: "ci-importer",
      scopes: ["sources:read", "items:read"],
    });
    const seen = await reached(
      await fetch(`${nginx.url}/api/v1/sources?page=2`, {
        headers: {
          ...bearer(secret),
          "x-auth-subject": "admin",
          "x-auth-role": "root",
          "x-auth-tenant": "evil",
          "x-request-id": "req-1",
        },
      }),
    );
    expect(seen.method).toBe("GET");
    expect(seen.url).toBe("/api/v1/sources?page=2");
    expect(seen.headers["x-auth-kind"]).toBe("live");
    expect(seen.headers["x-auth-subject"]).toBe("ci-importer");
    expect(seen.headers["x-auth-key-id"]).toBe(key.id);
    expect(seen.headers["x-auth-tenant"]).toBe("acme");
    expect(seen.headers["x-auth-scopes"]).toBe("sources:read items:read");
    expect(seen.headers["x-auth-role"]).toBeUndefined();
    expect(
      Object.keys(seen.headers)
        .filter((name) => name.startsWith("x-auth-"))
        .sort(),
    ).toEqual(["x-auth-key-id", "x-auth-kind", "x-auth-scopes", "x-auth-subject", "x-auth-tenant"]);
    expect(seen.headers["x-keyward-deny-body"]).toBeUndefined();
    expect(seen.headers["x-request-id"]).toBe("req-1");
    expect(seen.headers.authorization).toBe(`Bearer ${secret}`);
  });

  it("removes a forged identity header that keyward leaves empty", async () => {
    const { secret } = kw.store.create({ kind: "agent", scopes: ["sources:read"] });
    const seen = await reached(
      await fetch(`${nginx.url}/api/v1/sources`, {
        headers: { ...bearer(secret), "x-auth-tenant": "evil" },
      }),
    );
    expect(seen.headers["x-auth-kind"]).toBe("agent");
    expect(seen.headers["x-auth-tenant"]).toBeUndefined();
  });

  it("passes a request body through to the service", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:write"] });
    const seen = await reached(
      await fetch(`${nginx.url}/api/v1/sources`, {
        method: "POST",
        headers: { ...bearer(secret), "content-type": "application/json" },
        body: JSON.stringify({ name: "crm" }),
      }),
    );
    expect([seen.method, seen.body, seen.headers["content-type"]]).toEqual([
      "POST",
      '{"name":"crm"}',
      "application/json",
    ]);
  });

  it("answers a revoked key with keyward's 401 key_revoked body and WWW-Authenticate", async () => {
    const { secret, key } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    kw.store.revoke(key.id);
    const before = app.received.length;
    const response = await fetch(`${nginx.url}/api/v1/sources`, { headers: bearer(secret) });
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("www-authenticate")).toBe(
      'Bearer realm="keyward", error="key_revoked"',
    );
    const body = (await response.json()) as Record<string, string>;
    expect(body).toEqual({
      error: "key_revoked",
      message: "The API key has been revoked.",
      decision_id: expect.stringMatching(UUID),
    });
    expect(app.received.length).toBe(before);
    // The decision id in the body is the one keyward logged.
    expect(kw.logs.text).toContain(body.decision_id);
  });

  it("answers a missing scope with keyward's 403 insufficient_scope, judging the original method", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const before = app.received.length;
    const response = await fetch(`${nginx.url}/api/v1/sources`, {
      method: "POST",
      headers: { ...bearer(secret), "content-type": "application/json" },
      body: "{}",
    });
    expect(response.status, nginx.errorLog()).toBe(403);
    expect(response.headers.get("www-authenticate")).toBe(
      'Bearer realm="keyward", error="insufficient_scope", scope="sources:write"',
    );
    expect(await response.json()).toMatchObject({ error: "insufficient_scope" });
    expect(app.received.length).toBe(before);
  });

  it("answers a request without a credential with 401 missing_credential, and HEAD without a body", async () => {
    const response = await fetch(`${nginx.url}/api/v1/sources`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="keyward"');
    expect(await response.json()).toMatchObject({ error: "missing_credential" });

    const head = await fetch(`${nginx.url}/api/v1/sources`, { method: "HEAD" });
    expect(head.status).toBe(401);
    expect(await head.text()).toBe("");
  });

  it("does not let a client name another route through X-Forwarded-* headers", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const response = await fetch(`${nginx.url}/api/v1/sources`, {
      method: "DELETE",
      headers: {
        ...bearer(secret),
        "x-forwarded-method": "GET",
        "x-forwarded-uri": "/api/v1/sources",
        "x-original-method": "GET",
        "x-original-uri": "/api/v1/sources",
      },
    });
    expect(response.status).toBe(403);
  });
});

describe("nginx when keyward cannot decide", () => {
  it("answers 503 with keyward's unavailable body, and 503 when keyward is unreachable", async () => {
    const app = await startEchoService();
    const kw = await startTestKeyward({
      issuers: [{ issuer: ISSUER, audience: AUDIENCE, jwks_uri: await unreachableUrl() }],
    });
    const nginx = await startNginx(CONFIG, { keyward: kw.ports.http, app: app.port });
    const down = await startNginx(CONFIG, { keyward: await freePort(), app: app.port });
    try {
      // A JWT while the issuer's key set has never loaded: keyward says 503.
      const token = await signToken(await newSigningKey("k1"), claims());
      const response = await fetch(`${nginx.url}/api/v1/sources`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(response.status, nginx.errorLog()).toBe(503);
      expect(response.headers.get("www-authenticate")).toBe(
        'Bearer realm="keyward", error="unavailable"',
      );
      expect(await response.json()).toMatchObject({
        error: "unavailable",
        decision_id: expect.stringMatching(UUID),
      });

      const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
      const unreachable = await fetch(`${down.url}/api/v1/sources`, {
        headers: { authorization: `Bearer ${secret}` },
      });
      expect(unreachable.status).toBe(503);
      expect(unreachable.headers.get("content-type")).toBe("application/json");
      expect(await unreachable.json()).toMatchObject({ error: "unavailable" });
      expect(app.received).toEqual([]);
    } finally {
      await down.stop();
      await nginx.stop();
      await kw.close();
      await app.close();
    }
  });
});
