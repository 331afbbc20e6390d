import { beforeAll, describe, expect, it } from "vitest";
import {
  AUDIENCE,
  claims,
  ISSUER,
  issuerConfig,
  newSigningKey,
  nowSeconds,
  type SigningKey,
  signToken,
  startJwksServer,
  verifier,
} from "../helpers/jwks.js";

let key: SigningKey;
beforeAll(async () => {
  key = await newSigningKey("key-1");
});

/** A started verifier for one issuer served by a real JWKS server. */
async function started(entry: Record<string, unknown> = {}, options = {}) {
  const jwks = await startJwksServer([key.jwk]);
  const jwt = verifier([issuerConfig({ jwks_uri: jwks.url, ...entry })], options);
  await jwt.start();
  return { jwks, jwt };
}

describe("JWT verifier: claims", () => {
  it("allows a valid RS256 token and builds the identity from its claims", async () => {
    const { jwt } = await started({ role: "admin" });
    const payload = claims({ jti: "tok-1" });
    const result = await jwt.verify(await signToken(key, payload));
    expect(result).toEqual({
      ok: true,
      identity: {
        kind: "jwt",
        subject: "auth0|alice",
        keyId: "tok-1",
        tenant: "",
        scopes: ["sources:read", "runs:execute"],
        expiresAt: (payload.exp ?? 0) * 1000,
        binding: undefined,
        role: "admin",
        issuer: ISSUER,
      },
    });
    expect(jwt.ready()).toBe(true);
  });

  it("uses an empty key id when the token has no jti", async () => {
    const { jwt } = await started();
    const result = await jwt.verify(await signToken(key, claims({ jti: undefined })));
    expect(result.ok && result.identity.keyId).toBe("");
  });

  it("denies an expired token with token_expired", async () => {
    const { jwt } = await started();
    const now = nowSeconds();
    const result = await jwt.verify(
      await signToken(key, claims({ iat: now - 7200, exp: now - 60 })),
    );
    expect(result).toMatchObject({ ok: false, code: "token_expired" });
  });

  it("denies a token that is not yet valid (nbf) with invalid_token", async () => {
    const { jwt } = await started();
    const result = await jwt.verify(await signToken(key, claims({ nbf: nowSeconds() + 60 })));
    expect(result).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("denies a token issued in the future (iat beyond the tolerance)", async () => {
    const { jwt } = await started();
    const result = await jwt.verify(await signToken(key, claims({ iat: nowSeconds() + 60 })));
    expect(result).toEqual({ ok: false, code: "invalid_token", reason: "iat is in the future" });
  });

  it("denies a token from an unknown issuer", async () => {
    const { jwt } = await started();
    const result = await jwt.verify(
      await signToken(key, claims({ iss: "https://evil.example.com/" })),
    );
    expect(result).toEqual({ ok: false, code: "invalid_token", reason: "unknown issuer" });
    expect(jwt.stats().verifications).toBe(0);
  });

  it("denies a token for another audience", async () => {
    const { jwt } = await started();
    const result = await jwt.verify(
      await signToken(key, claims({ aud: "https://other-api.example.com" })),
    );
    expect(result).toMatchObject({ ok: false, code: "invalid_token" });
    expect(result.ok || result.reason).toMatch(/aud/);
  });

  it("accepts any configured audience, and a token listing several", async () => {
    const { jwt } = await started({ audience: ["https://other", AUDIENCE] });
    const result = await jwt.verify(
      await signToken(key, claims({ aud: [AUDIENCE, "https://tenant.eu.auth0.com/userinfo"] })),
    );
    expect(result.ok).toBe(true);
  });

  it("denies a token without exp, and one without a subject", async () => {
    const { jwt } = await started();
    expect(await jwt.verify(await signToken(key, claims({ exp: undefined })))).toMatchObject({
      ok: false,
      code: "invalid_token",
    });
    expect(await jwt.verify(await signToken(key, claims({ sub: undefined })))).toEqual({
      ok: false,
      code: "invalid_token",
      reason: '"sub" claim missing or not a string',
    });
  });

  it("reads the subject from subject_claim", async () => {
    const { jwt } = await started({ subject_claim: "email" });
    const result = await jwt.verify(await signToken(key, claims({ email: "alice@example.com" })));
    expect(result.ok && result.identity.subject).toBe("alice@example.com");
  });

  it("reads scopes from a space-separated scope string", async () => {
    const { jwt } = await started();
    const result = await jwt.verify(
      await signToken(key, claims({ scope: " sources:read  items:write sources:read" })),
    );
    expect(result.ok && result.identity.scopes).toEqual(["sources:read", "items:write"]);
  });

  it("reads scopes from a permissions list, ignoring non-strings", async () => {
    const { jwt } = await started({ scopes_claim: "permissions" });
    const token = await signToken(
      key,
      claims({
        scope: "openid profile",
        permissions: ["runs:apply", 42, null, { a: 1 }, "items:read", "two words"],
      }),
    );
    const result = await jwt.verify(token);
    expect(result.ok && result.identity.scopes).toEqual(["runs:apply", "items:read"]);
  });

  it("accepts either shape from either claim", async () => {
    const { jwt } = await started({ scopes_claim: "permissions" });
    const asString = await jwt.verify(await signToken(key, claims({ permissions: "a:b c:d" })));
    expect(asString.ok && asString.identity.scopes).toEqual(["a:b", "c:d"]);
    const missing = await jwt.verify(await signToken(key, claims()));
    expect(missing.ok && missing.identity.scopes).toEqual([]);
  });

  it("reads the tenant from tenant_claim, and leaves it empty when unset or absent", async () => {
    const { jwt } = await started({ tenant_claim: "https://example.com/org_id" });
    const withOrg = await jwt.verify(
      await signToken(key, claims({ "https://example.com/org_id": "org_123", org_id: "x" })),
    );
    expect(withOrg.ok && withOrg.identity.tenant).toBe("org_123");
    const without = await jwt.verify(await signToken(key, claims()));
    expect(without.ok && without.identity.tenant).toBe("");
  });

  it("honours clock_tolerance: a token expired 3 s ago passes with 5 s, fails with 0 s", async () => {
    const fixedNow = Date.UTC(2030, 0, 1, 12, 0, 0);
    const nowS = fixedNow / 1000;
    const token = await signToken(key, claims({ iat: nowS - 600, exp: nowS - 3 }));
    const lenient = (await started({ clock_tolerance: 5 }, { now: () => fixedNow })).jwt;
    expect((await lenient.verify(token)).ok).toBe(true);
    const strict = (await started({ clock_tolerance: 0 }, { now: () => fixedNow })).jwt;
    expect(await strict.verify(token)).toMatchObject({ ok: false, code: "token_expired" });
  });

  it("applies the default 5 s tolerance to nbf too", async () => {
    const fixedNow = Date.UTC(2030, 0, 1, 12, 0, 0);
    const nowS = fixedNow / 1000;
    const { jwt } = await started({}, { now: () => fixedNow });
    const soon = await signToken(key, claims({ iat: nowS, nbf: nowS + 4, exp: nowS + 600 }));
    expect((await jwt.verify(soon)).ok).toBe(true);
    const later = await signToken(key, claims({ iat: nowS, nbf: nowS + 6, exp: nowS + 600 }));
    expect((await jwt.verify(later)).ok).toBe(false);
  });
});

describe("JWT verifier: verified-token cache", () => {
  it("answers a repeated token from the cache without another signature check", async () => {
    const { jwt } = await started();
    const token = await signToken(key);
    const first = await jwt.verify(token);
    const second = await jwt.verify(token);
    expect(second).toEqual(first);
    expect(jwt.stats()).toMatchObject({ verifications: 1, cacheHits: 1 });
  });

  it("does not keep an entry past the token's exp", async () => {
    let clock = Date.UTC(2030, 0, 1, 12, 0, 0);
    const { jwt } = await started({ clock_tolerance: 0 }, { now: () => clock });
    const token = await signToken(key, claims({ iat: clock / 1000, exp: clock / 1000 + 10 }));
    expect((await jwt.verify(token)).ok).toBe(true);
    clock += 9_000;
    expect((await jwt.verify(token)).ok).toBe(true);
    expect(jwt.stats()).toMatchObject({ verifications: 1, cacheHits: 1 });
    clock += 2_000;
    expect(await jwt.verify(token)).toMatchObject({ ok: false, code: "token_expired" });
    expect(jwt.stats()).toMatchObject({ verifications: 2, cacheHits: 1 });
  });

  it("stays bounded by cacheMaxEntries", async () => {
    const { jwt } = await started({}, { cacheMaxEntries: 2 });
    const tokens = await Promise.all([1, 2, 3].map(() => signToken(key)));
    for (const token of tokens) await jwt.verify(token);
    await jwt.verify(tokens[0] as string); // evicted by the third
    await jwt.verify(tokens[2] as string); // still cached
    expect(jwt.stats()).toMatchObject({ verifications: 4, cacheHits: 1 });
  });

  it("never returns a failure reason that contains the token", async () => {
    const { jwt } = await started();
    const token = await signToken(key, claims({ aud: "https://elsewhere" }));
    const result = await jwt.verify(token);
    expect(result.ok).toBe(false);
    const reason = result.ok ? "" : result.reason;
    for (const segment of token.split(".")) expect(reason).not.toContain(segment);
  });
});
