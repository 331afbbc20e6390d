import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningCaddy, startCaddy, validateCaddyfile } from "../helpers/caddy.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";
import { type EchoedRequest, type EchoService, startEchoService } from "../helpers/nginx.js";

// The shipped Caddyfile, run by a real Caddy (forward_auth) in front of a
// real keyward and an echo service that reports the headers it received.
const CADDYFILE = "deploy/caddy/Caddyfile";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const IDENTITY = [
  "x-auth-key-id",
  "x-auth-kind",
  "x-auth-scopes",
  "x-auth-subject",
  "x-auth-tenant",
];

describe("the shipped Caddyfile", () => {
  it("is valid and formatted as `caddy fmt` writes it", () => {
    const output = validateCaddyfile(readFileSync(CADDYFILE, "utf8"));
    expect(output).toContain("Valid configuration");
    expect(output).not.toMatch(/not formatted/);
  });
});

describe("Caddy forward_auth with deploy/caddy/Caddyfile", () => {
  let dir: string;
  let kw: TestKeyward;
  let app: EchoService;
  let caddy: RunningCaddy;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-caddy-policy-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      [
        "rules:",
        "  - { method: GET, path: /api/v1/sources, scopes: [sources:read] }",
        "  - { method: POST, path: /api/v1/sources, scopes: [sources:write] }",
        "  - { method: GET, path: '/public/{rest...}', scopes: [] }",
        "",
      ].join("\n"),
    );
    kw = await startTestKeyward({ policy });
    app = await startEchoService();
    caddy = await startCaddy(CADDYFILE, { keyward: kw.ports.http, app: app.port });
  });
  afterAll(async () => {
    await caddy?.stop();
    await app?.close();
    await kw?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const reached = async (response: Response): Promise<EchoedRequest> => {
    expect(response.status, caddy.log()).toBe(200);
    return (await response.json()) as EchoedRequest;
  };
  const identityOf = (seen: EchoedRequest) =>
    Object.fromEntries(
      Object.entries(seen.headers)
        .filter(([name]) => name.startsWith("x-auth-"))
        .sort(([a], [b]) => a.localeCompare(b)),
    );

  it("lets a valid key through with keyward's five identity headers and none the client forged", async () => {
    const { secret, key } = kw.store.create({
      kind: "live",
      tenant: "acme",
      owner: "ci-importer",
      scopes: ["sources:read", "items:read"],
    });
    const seen = await reached(
      await fetch(`${caddy.url}/api/v1/sources?page=2`, {
        headers: {
          ...bearer(secret),
          "x-auth-subject": "admin",
          "x-auth-role": "root",
          "x-auth-tenant": "evil",
        },
      }),
    );
    expect([seen.method, seen.url]).toEqual(["GET", "/api/v1/sources?page=2"]);
    expect(identityOf(seen)).toEqual({
      "x-auth-key-id": key.id,
      "x-auth-kind": "live",
      "x-auth-scopes": "sources:read items:read",
      "x-auth-subject": "ci-importer",
      "x-auth-tenant": "acme",
    });
  });

  it("sends every identity header for a key without tenant or scopes, never a literal placeholder", async () => {
    const { secret, key } = kw.store.create({ kind: "agent", scopes: [] });
    const seen = await reached(
      await fetch(`${caddy.url}/public/docs`, {
        headers: { ...bearer(secret), "x-auth-tenant": "evil" },
      }),
    );
    const identity = identityOf(seen);
    expect(Object.keys(identity)).toEqual(IDENTITY);
    expect(identity).toMatchObject({
      "x-auth-kind": "agent",
      "x-auth-key-id": key.id,
      "x-auth-tenant": "",
      "x-auth-scopes": "",
    });
    expect(JSON.stringify(seen.headers)).not.toContain("{http.");
  });

  it("carries a CJK and emoji owner percent-encoded, decoding back with decodeURIComponent", async () => {
    const owner = "研究者 🔑";
    const { secret } = kw.store.create({ kind: "live", owner, scopes: ["sources:read"] });
    const seen = await reached(
      await fetch(`${caddy.url}/api/v1/sources`, { headers: bearer(secret) }),
    );
    const subject = seen.headers["x-auth-subject"] as string;
    expect(subject).toMatch(/^[\x21-\x7e ]+$/);
    expect(decodeURIComponent(subject)).toBe(owner);
  });

  it("answers a revoked key with keyward's 401 body and WWW-Authenticate, without reaching the service", async () => {
    const { secret, key } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    kw.store.revoke(key.id);
    const before = app.received.length;
    const response = await fetch(`${caddy.url}/api/v1/sources`, { headers: bearer(secret) });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe(
      'Bearer realm="keyward", error="key_revoked"',
    );
    expect(await response.json()).toEqual({
      error: "key_revoked",
      message: expect.any(String),
      decision_id: expect.stringMatching(UUID),
    });
    expect(app.received.length).toBe(before);
  });

  it("judges the original method: a read-only key cannot POST, whatever X-Forwarded-* the client sends", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const before = app.received.length;
    const response = await fetch(`${caddy.url}/api/v1/sources`, {
      method: "POST",
      headers: {
        ...bearer(secret),
        "content-type": "application/json",
        "x-forwarded-method": "GET",
        "x-forwarded-uri": "/api/v1/sources",
      },
      body: "{}",
    });
    expect(response.status, caddy.log()).toBe(403);
    expect(response.headers.get("www-authenticate")).toBe(
      'Bearer realm="keyward", error="insufficient_scope", scope="sources:write"',
    );
    expect(app.received.length).toBe(before);
  });

  it("drops a client's X-Original-* description, so it cannot make keyward judge another route", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const seen = await reached(
      await fetch(`${caddy.url}/api/v1/sources`, {
        headers: {
          ...bearer(secret),
          "x-original-method": "DELETE",
          "x-original-uri": "/public/elsewhere",
        },
      }),
    );
    expect(seen.headers["x-auth-scopes"]).toBe("sources:read");
  });

  it("answers a request without a credential with 401 missing_credential", async () => {
    const response = await fetch(`${caddy.url}/api/v1/sources`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer realm="keyward"');
    expect(await response.json()).toMatchObject({ error: "missing_credential" });
  });
});
