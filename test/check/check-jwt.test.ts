import { describe, expect, it } from "vitest";
import { allowance, denial, EnvoyCheckClient, structToJson } from "../helpers/envoy-client.js";
import {
  AUDIENCE,
  base64url,
  claims,
  ISSUER,
  newSigningKey,
  nowSeconds,
  signHs256,
  signToken,
  startJwksServer,
  unreachableUrl,
} from "../helpers/jwks.js";
import { startTestKeyward } from "../helpers/keyward.js";

const issuerEntry = (jwksUri: string, extra: Record<string, unknown> = {}) => ({
  issuer: ISSUER,
  audience: AUDIENCE,
  jwks_uri: jwksUri,
  tenant_claim: "org_id",
  ...extra,
});

describe("ext_authz Check on JWTs", () => {
  it("allows an Auth0 RS256 token with identity from its claims, and denies bad ones precisely", async () => {
    const key = await newSigningKey("k1");
    const jwks = await startJwksServer([key.jwk]);
    const kw = await startTestKeyward({ issuers: [issuerEntry(jwks.url)] });
    const client = new EnvoyCheckClient(kw.ports.check);
    try {
      const exp = nowSeconds() + 600;
      const token = await signToken(
        key,
        claims({ org_id: "acme", scope: "sources:read runs:read", exp, jti: "t-1" }),
      );
      const response = await client.check({
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${token}`, "x-auth-kind": "live" },
      });
      const a = allowance(response);
      expect(a.headers).toEqual({
        "x-auth-kind": "jwt",
        "x-auth-subject": "auth0|alice",
        "x-auth-key-id": "t-1",
        "x-auth-tenant": "acme",
        "x-auth-scopes": "sources:read runs:read",
      });
      expect(structToJson(response.dynamic_metadata)).toMatchObject({
        kind: "jwt",
        expires_at: new Date(exp * 1000).toISOString(),
      });

      const scoped = denial(
        await client.check({
          method: "POST",
          path: "/api/v1/sources",
          headers: { authorization: `Bearer ${token}` },
        }),
      );
      expect(scoped.body.error).toBe("insufficient_scope");

      const expired = await signToken(
        key,
        claims({ exp: nowSeconds() - 60, iat: nowSeconds() - 120 }),
      );
      const e = denial(
        await client.check({
          path: "/api/v1/sources",
          headers: { authorization: `Bearer ${expired}` },
        }),
      );
      expect([e.grpcCode, e.body.error]).toEqual([16, "token_expired"]);
      expect(e.headers["www-authenticate"]).toBe('Bearer realm="keyward", error="token_expired"');

      const none = `${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims())}.`;
      const hs = signHs256(JSON.stringify(key.jwk), { kid: "k1" }, claims());
      const otherKey = await newSigningKey("k1");
      const forged = await signToken(otherKey, claims());
      const wrongAudience = await signToken(key, claims({ aud: "https://other.example.com" }));
      for (const bad of [none, hs, forged, wrongAudience]) {
        const d = denial(
          await client.check({
            path: "/api/v1/sources",
            headers: { authorization: `Bearer ${bad}` },
          }),
        );
        expect(d.body.error).toBe("invalid_token");
        expect(d.body.message).toBe("The credential is not valid.");
      }
      const ready = await fetch(`http://127.0.0.1:${kw.ports.http}/readyz`);
      expect(ready.status).toBe(200);
    } finally {
      client.close();
      await kw.close();
    }
  });

  it("answers 503 unavailable while the issuer's JWKS has never loaded, and /readyz says why", async () => {
    const key = await newSigningKey("k1");
    const kw = await startTestKeyward({ issuers: [issuerEntry(await unreachableUrl())] });
    const client = new EnvoyCheckClient(kw.ports.check);
    try {
      const token = await signToken(key, claims());
      const d = denial(
        await client.check({
          path: "/api/v1/sources",
          headers: { authorization: `Bearer ${token}` },
        }),
      );
      expect([d.grpcCode, d.httpStatus, d.body.error]).toEqual([
        14,
        "ServiceUnavailable",
        "unavailable",
      ]);
      const ready = await fetch(`http://127.0.0.1:${kw.ports.http}/readyz`);
      expect(ready.status).toBe(503);
      const body = (await ready.json()) as { checks: Record<string, string> };
      expect(body.checks[`jwks ${ISSUER}`]).toMatch(/^not loaded: /);
      // API keys keep working meanwhile.
      const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read"] });
      expect(
        (
          await client.check({
            path: "/api/v1/sources",
            headers: { authorization: `Bearer ${secret}` },
          })
        ).status?.code,
      ).toBe(0);
    } finally {
      client.close();
      await kw.close();
    }
  });

  it("denies every JWT as invalid_token when no issuer is configured", async () => {
    const key = await newSigningKey("k1");
    const kw = await startTestKeyward();
    const client = new EnvoyCheckClient(kw.ports.check);
    try {
      const token = await signToken(key, claims());
      const d = denial(
        await client.check({
          path: "/api/v1/sources",
          headers: { authorization: `Bearer ${token}` },
        }),
      );
      expect(d.body.error).toBe("invalid_token");
    } finally {
      client.close();
      await kw.close();
    }
  });
});
