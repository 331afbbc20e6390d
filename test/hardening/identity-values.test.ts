import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowance, EnvoyCheckClient, structToJson } from "../helpers/envoy-client.js";
import { bootstrapAdmin, type KeywardProcess, spawnKeyward } from "../helpers/hardening.js";
import {
  AUDIENCE,
  claims,
  ISSUER,
  newSigningKey,
  type SigningKey,
  signToken,
  startJwksServer,
} from "../helpers/jwks.js";

// Issue 18 point 1, process-wide: identity values that are not valid header
// values (CJK, emoji, newline, DEL, NUL, lone surrogates, padding spaces, a
// literal %) go through every transport of one real `keyward serve` process.
// Every answer must be a valid response whose identity headers are visible
// ASCII that decode back to the value with one decodeURIComponent, and the
// process must still answer /healthz at the end.

const IDENTITIES = [
  "研究者",
  "emoji 🔑🚀",
  "new\nline",
  "cr\r\nx-injected: 1",
  "del\u007f",
  "nul\u0000byte",
  "tab\there",
  "  padded  ",
  "100% sure",
  "a%41b",
  "Latin-1 é ü",
  "sep\u2028arator",
  "lone \ud800 surrogate",
];

/** A valid header value keyward may send: visible ASCII, inner spaces, no edge spaces. */
const HEADER_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/;

/** What the upstream gets back after one decodeURIComponent (lone surrogates become U+FFFD). */
function wellFormed(value: string): string {
  return (value as string & { toWellFormed(): string }).toWellFormed();
}

function expectDecodes(value: string | null | undefined, original: string, what: string): void {
  expect(value, what).toBeTypeOf("string");
  expect(value, what).toMatch(HEADER_VALUE);
  expect(decodeURIComponent(value as string), what).toBe(wellFormed(original));
}

/** The parts of an admin REST answer this test reads. */
interface AdminBody {
  readonly key: { readonly id: string; readonly owner: string; readonly tenant: string };
  readonly secret: string;
}

type Dialect = "envoy" | "nginx" | "traefik";
const DIALECTS: Dialect[] = ["envoy", "nginx", "traefik"];

describe("identity values that are not header values, through every transport of one process", () => {
  let dir: string;
  let kw: KeywardProcess;
  let signing: SigningKey;
  let check: EnvoyCheckClient;
  let root: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-identity-"));
    const database = join(dir, "keys.db");
    root = bootstrapAdmin(database);
    signing = await newSigningKey("identity-test");
    const jwks = await startJwksServer([signing.jwk]);
    // A policy of its own, so the test does not depend on the shipped one.
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      "rules:\n  - method: GET\n    path: /api/v1/sources\n    scopes: [sources:read]\n",
    );
    const config = join(dir, "keyward.yaml");
    writeFileSync(
      config,
      JSON.stringify({
        policy,
        issuers: [
          {
            issuer: ISSUER,
            audience: AUDIENCE,
            jwks_uri: jwks.url,
            role: "researcher",
            tenant_claim: "org_id",
          },
        ],
      }),
    );
    kw = await spawnKeyward({ database, env: { KEYWARD_CONFIG: config } });
    check = new EnvoyCheckClient(kw.ports.check);
    // The JWKS server is closed after each test (helpers/jwks.ts); keyward
    // keeps the key set it loaded, so load it now.
    const warm = await signToken(signing, claims({ scope: "sources:read" }));
    await authz("envoy", warm);
  });
  afterAll(async () => {
    check?.close();
    await kw?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function authz(dialect: Dialect, token: string): Promise<Response> {
    const base = `http://127.0.0.1:${kw.ports.http}`;
    const authorization = `Bearer ${token}`;
    switch (dialect) {
      case "envoy":
        return fetch(`${base}/authz/api/v1/sources`, { headers: { authorization } });
      case "nginx":
        return fetch(`${base}/authz`, {
          headers: {
            authorization,
            "x-original-method": "GET",
            "x-original-uri": "/api/v1/sources",
          },
        });
      case "traefik":
        return fetch(`${base}/authz`, {
          headers: {
            authorization,
            "x-forwarded-method": "GET",
            "x-forwarded-uri": "/api/v1/sources",
            "x-forwarded-host": "api.example.com",
          },
        });
    }
  }

  async function adminRest(method: string, path: string, body?: unknown, token = root) {
    const response = await fetch(`http://127.0.0.1:${kw.ports.admin}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body !== undefined && { "content-type": "application/json" }),
      },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : {}) as AdminBody };
  }

  /** The token goes through Check and /authz in all three dialects; both facts decode back. */
  async function throughEveryTransport(
    token: string,
    facts: { subject: string; tenant: string },
  ): Promise<void> {
    for (const dialect of DIALECTS) {
      const answer = await authz(dialect, token);
      expect(answer.status, dialect).toBe(200);
      expectDecodes(answer.headers.get("x-auth-subject"), facts.subject, `${dialect} subject`);
      expectDecodes(answer.headers.get("x-auth-tenant"), facts.tenant, `${dialect} tenant`);
    }
    const response = await check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${token}` },
    });
    const allowed = allowance(response);
    expectDecodes(allowed.headers["x-auth-subject"], facts.subject, "Check x-auth-subject");
    expectDecodes(allowed.headers["x-auth-tenant"], facts.tenant, "Check x-auth-tenant");
    for (const option of allowed.options) expect(option.header.value).toMatch(HEADER_VALUE);
    // Dynamic metadata is not a header: it carries the raw values.
    const metadata = structToJson(response.dynamic_metadata);
    expect(metadata.subject).toBe(wellFormed(facts.subject));
    expect(metadata.tenant).toBe(wellFormed(facts.tenant));
  }

  it.each(IDENTITIES.map((value) => [JSON.stringify(value), value]))(
    "carries the JWT subject and tenant %s percent-encoded in every header, raw in metadata",
    async (_label, value) => {
      const token = await signToken(
        signing,
        claims({ sub: value, org_id: value, scope: "sources:read" }),
      );
      await throughEveryTransport(token, { subject: value, tenant: value });
      expect(kw.alive()).toBe(true);
    },
  );

  it("carries an admin-minted key's CJK and emoji owner and tenant through every transport", async () => {
    const owner = "研究者 🔑";
    const tenant = "テナント 100%";
    const created = await adminRest("POST", "/v1/admin/keys", {
      kind: "live",
      owner,
      tenant,
      scopes: ["sources:read"],
    });
    expect(created.status).toBe(201);
    expect(created.body.key.owner).toBe(owner);
    await throughEveryTransport(created.body.secret, { subject: owner, tenant });

    // The key reads back unchanged through the admin API (JSON, not a header).
    const got = await adminRest("GET", `/v1/admin/keys/${created.body.key.id}`);
    expect([got.status, got.body.key.owner, got.body.key.tenant]).toEqual([200, owner, tenant]);
  });

  it("refuses a control character in an admin-set owner with 400 naming the field", async () => {
    const refused = await adminRest("POST", "/v1/admin/keys", {
      kind: "live",
      owner: "a\nb",
      scopes: ["sources:read"],
    });
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.body)).toContain("owner");
  });

  it("answers a researcher whose subject holds a newline on POST /api-keys, and any key minted is safe", async () => {
    const token = await signToken(
      signing,
      claims({ sub: "alice\nx-evil: 1 🔑", org_id: "研究所", scope: "sources:read" }),
    );
    const minted = await adminRest("POST", "/api-keys", { description: "ci" }, token);
    expect([201, 400, 403]).toContain(minted.status);
    if (minted.status === 201) {
      await throughEveryTransport(minted.body.secret, {
        subject: minted.body.key.owner,
        tenant: minted.body.key.tenant,
      });
    }
    const listed = await adminRest("GET", "/v1/admin/keys", undefined, token);
    expect([200, 403]).toContain(listed.status);
  });

  it("still answers /healthz, Check and /authz afterwards: the process never went down", async () => {
    const health = await fetch(`http://127.0.0.1:${kw.ports.http}/healthz`);
    expect(health.status).toBe(200);
    const token = await signToken(signing, claims({ scope: "sources:read" }));
    expect((await authz("nginx", token)).status).toBe(200);
    expect(kw.alive()).toBe(true);
    expect(kw.stderr()).not.toMatch(/uncaught|ERR_INVALID_CHAR/i);
  });
});
