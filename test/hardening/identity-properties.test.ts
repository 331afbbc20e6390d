import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { headerValue } from "../../src/auth/identity-headers.js";
import { identityTextProblem } from "../../src/keys/input.js";
import { EnvoyCheckClient, structToJson } from "../helpers/envoy-client.js";
import { judge } from "../helpers/hardening.js";
import {
  AUDIENCE,
  claims,
  ISSUER,
  newSigningKey,
  type SigningKey,
  signToken,
} from "../helpers/jwks.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

// Issue 18: random Unicode and control characters in every identity field
// and claim, through every transport (gRPC Check, /authz in its three
// dialects, the admin API). Invariant: the server stays up, every answer is
// a valid response (identity headers are visible ASCII that decode back to
// the value), and nothing is allowed without a minted, live credential.
// Run counts are modest: each run is several real requests.

const SEED = Number(process.env.FC_SEED ?? 0x6b657977);
const HEADER_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/;

const wellFormed = (value: string): string =>
  (value as string & { toWellFormed(): string }).toWellFormed();

/** Text as hostile as JSON can carry: controls, separators, %, edge spaces, lone surrogates, any plane. */
const hostileText: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.string({
    unit: fc.constantFrom(
      "\n",
      "\r",
      "\u0000",
      "\t",
      "\u007f",
      "\u0085",
      "\u2028",
      "\u2029",
      "%",
      "%41",
      " ",
      "\ud800",
      "\udfff",
      "研",
      "🔑",
      "é",
      "a",
      ":",
      "\u202e",
    ),
    maxLength: 20,
  }),
);

describe("property: the identity header rule", () => {
  it("turns any text into a valid header value that decodes back (20 000 values)", () => {
    fc.assert(
      fc.property(hostileText, (value) => {
        const encoded = headerValue(value);
        expect(encoded).toMatch(HEADER_VALUE);
        expect(decodeURIComponent(encoded)).toBe(wellFormed(value));
        if (/^[\x21-\x24\x26-\x7e]([\x20-\x24\x26-\x7e]*[\x21-\x24\x26-\x7e])?$/.test(value)) {
          expect(encoded).toBe(value);
        }
      }),
      { seed: SEED, numRuns: 20_000 },
    );
  });
});

describe("property: arbitrary identity text through every transport of a real keyward", () => {
  let dir: string;
  let jwks: Server;
  let signing: SigningKey;
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  let root: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-identity-prop-"));
    signing = await newSigningKey("prop");
    // A JWKS server of this file's own (helpers/jwks.ts closes its servers after each test).
    jwks = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [signing.jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      "rules:\n  - method: GET\n    path: /api/v1/sources\n    scopes: [sources:read]\n",
    );
    kw = await startTestKeyward({
      policy,
      // Deny lines at info would make the log capture the bottleneck.
      log_level: "warn",
      issuers: [
        {
          issuer: ISSUER,
          audience: AUDIENCE,
          jwks_uri: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
          tenant_claim: "org_id",
          role: "researcher",
        },
      ],
    });
    check = new EnvoyCheckClient(kw.ports.check);
    root = kw.store.create({ kind: "live", scopes: ["keys:admin"] }).secret;
  });
  afterAll(async () => {
    check?.close();
    await kw?.close();
    jwks?.closeAllConnections();
    await new Promise<void>((resolve) => jwks?.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const dialects = ["envoy", "nginx", "traefik"] as const;
  function authz(dialect: (typeof dialects)[number], authorization: string) {
    const base = `http://127.0.0.1:${kw.ports.http}`;
    if (dialect === "envoy")
      return fetch(`${base}/authz/api/v1/sources`, { headers: { authorization } });
    const [method, uri] =
      dialect === "nginx"
        ? ["x-original-method", "x-original-uri"]
        : ["x-forwarded-method", "x-forwarded-uri"];
    return fetch(`${base}/authz`, {
      headers: { authorization, [method]: "GET", [uri]: "/api/v1/sources" },
    });
  }

  /**
   * The credential goes through Check and one /authz dialect. Both must
   * answer well formed; an allow only with `expected` (the facts of a
   * credential that exists), its identity headers valid and decoding back.
   */
  async function everyTransport(
    authorization: string,
    dialect: (typeof dialects)[number],
    expected: { subject: string; tenant: string; keyId: string } | undefined,
  ): Promise<void> {
    const response = await check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization },
    });
    const verdict = judge(response); // throws on a malformed response
    expect(verdict.allow).toBe(expected !== undefined);
    if (verdict.allow && expected) {
      for (const value of Object.values(verdict.headers)) expect(value).toMatch(HEADER_VALUE);
      const decoded = (name: string) => decodeURIComponent(verdict.headers[name] ?? "");
      expect(decoded("x-auth-subject")).toBe(wellFormed(expected.subject));
      expect(decoded("x-auth-tenant")).toBe(wellFormed(expected.tenant));
      expect(decoded("x-auth-key-id")).toBe(wellFormed(expected.keyId));
      const metadata = structToJson(response.dynamic_metadata);
      expect([metadata.subject, metadata.tenant]).toEqual([
        wellFormed(expected.subject),
        wellFormed(expected.tenant),
      ]);
    }

    const answer = await authz(dialect, authorization);
    expect([200, 401, 403]).toContain(answer.status);
    expect(answer.status === 200).toBe(expected !== undefined);
    if (answer.status === 200 && expected) {
      const subject = answer.headers.get("x-auth-subject") ?? "";
      const tenant = answer.headers.get("x-auth-tenant") ?? "";
      expect([subject, tenant]).toEqual([
        headerValue(expected.subject),
        headerValue(expected.tenant),
      ]);
    } else {
      expect(await answer.json()).toMatchObject({ error: expect.any(String) });
    }
  }

  it("carries any JWT subject, tenant and jti claim through Check and /authz (120 tokens)", async () => {
    await fc.assert(
      fc.asyncProperty(
        hostileText,
        hostileText,
        hostileText,
        fc.constantFrom(...dialects),
        async (sub, tenant, jti, dialect) => {
          const token = await signToken(
            signing,
            claims({ sub, org_id: tenant, jti, scope: "sources:read" }),
          );
          // An empty subject is not an identity (invalid_token); anything else is.
          const expected = sub === "" ? undefined : { subject: sub, tenant, keyId: jti };
          await everyTransport(`Bearer ${token}`, dialect, expected);
        },
      ),
      { seed: SEED, numRuns: 120 },
    );
  }, 120_000);

  it("mints keys with any name, owner and tenant through the admin API, or refuses naming the field (120 keys)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ name: hostileText, owner: hostileText, tenant: hostileText }),
        fc.constantFrom(...dialects),
        async (fields, dialect) => {
          const response = await fetch(`http://127.0.0.1:${kw.ports.admin}/v1/admin/keys`, {
            method: "POST",
            headers: { authorization: `Bearer ${root}`, "content-type": "application/json" },
            body: JSON.stringify({ kind: "live", scopes: ["sources:read"], ...fields }),
          });
          const body = (await response.json()) as {
            key?: { id: string; name: string; owner: string; tenant: string };
            secret?: string;
            message?: string;
          };
          const refused = (["name", "owner", "tenant"] as const).filter(
            (field) => identityTextProblem(fields[field]) !== undefined,
          );
          if (refused.length > 0) {
            expect(response.status).toBe(400);
            expect(refused.some((field) => JSON.stringify(body).includes(field))).toBe(true);
            return;
          }
          expect(response.status).toBe(201);
          const key = body.key as NonNullable<typeof body.key>;
          expect([key.name, key.owner, key.tenant]).toEqual([
            fields.name,
            fields.owner,
            fields.tenant,
          ]);
          await everyTransport(`Bearer ${body.secret}`, dialect, {
            subject: fields.owner === "" ? key.id : fields.owner,
            tenant: fields.tenant,
            keyId: key.id,
          });
          // Revoked, the same secret is never allowed again, on any transport.
          await fetch(`http://127.0.0.1:${kw.ports.admin}/v1/admin/keys/${key.id}`, {
            method: "DELETE",
            headers: { authorization: `Bearer ${root}` },
          });
          await everyTransport(`Bearer ${body.secret}`, dialect, undefined);
        },
      ),
      { seed: SEED, numRuns: 120 },
    );
  }, 120_000);

  it("never allows a credential nobody minted, whatever its text (300 requests)", async () => {
    const headerSafe = fc.string({
      unit: fc
        .integer({ min: 0x20, max: 0xff })
        .filter((c) => c !== 0x7f)
        .map((c) => String.fromCharCode(c)),
      maxLength: 80,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          headerSafe.map((t) => `Bearer ${t}`),
          headerSafe.map((t) => `Bearer sk_live_${t}`),
          headerSafe,
        ),
        fc.constantFrom(...dialects),
        async (authorization, dialect) => everyTransport(authorization, dialect, undefined),
      ),
      { seed: SEED, numRuns: 300 },
    );
    expect((await fetch(`http://127.0.0.1:${kw.ports.http}/healthz`)).status).toBe(200);
  }, 120_000);
});
