import { randomBytes } from "node:crypto";
import type { JWK } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { JwtVerifier } from "../../src/jwt/verifier.js";
import {
  claims,
  eventually,
  issuerConfig,
  type JwksServer,
  newSigningKey,
  type SigningKey,
  signToken,
  startJwksServer,
  verifier,
} from "../helpers/jwks.js";

// The verified-token cache remembers which key verified each token; a JWKS
// refresh drops exactly the entries whose key left the set (issue 18 point 6).

let key1: SigningKey;
let key2: SigningKey;
let key3: SigningKey;
/** New key material published under key1's kid. */
let key1Rotated: SigningKey;
beforeAll(async () => {
  [key1, key2, key3, key1Rotated] = await Promise.all([
    newSigningKey("key-1"),
    newSigningKey("key-2"),
    newSigningKey("key-3"),
    newSigningKey("key-1"),
  ]);
});

const withoutKid = ({ kid: _kid, ...rest }: JWK): JWK => rest;

/** A verifier whose every unknown kid reloads the key set (no cooldown). */
async function startedVerifier(jwks: JwksServer): Promise<JwtVerifier> {
  const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })], { refetchCooldownMs: 0 });
  await jwt.start();
  return jwt;
}

/**
 * Makes the verifier refetch the key set now: a token naming a kid it has not
 * seen is what an IdP rotation looks like to it. Asserts the fetch happened.
 */
async function refresh(jwt: JwtVerifier, jwks: JwksServer, signer: SigningKey): Promise<void> {
  const before = jwks.requests;
  const probe = await signToken(signer, claims(), {
    kid: `probe-${randomBytes(4).toString("hex")}`,
  });
  expect(await jwt.verify(probe)).toMatchObject({ ok: false, code: "invalid_token" });
  expect(jwks.requests).toBe(before + 1);
}

describe("JWKS changes and the verified-token cache", () => {
  it("refuses a cached token once its kid names new key material", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = await startedVerifier(jwks);
    const token = await signToken(key1);
    expect((await jwt.verify(token)).ok).toBe(true);
    expect((await jwt.verify(token)).ok).toBe(true);
    expect(jwt.stats()).toMatchObject({ verifications: 1, cacheHits: 1 });

    // Same kid, other material: the kid set is unchanged, the key is not.
    jwks.setKeys([key1Rotated.jwk]);
    await refresh(jwt, jwks, key1);
    const result = await jwt.verify(token);
    expect(result).toMatchObject({ ok: false, code: "invalid_token" });
    expect(result.ok || result.reason).toMatch(/SIGNATURE_VERIFICATION_FAILED/);
    expect(jwt.stats()).toMatchObject({ cacheHits: 1, cacheInvalidations: 1 });
    // The new material under the same kid verifies.
    expect((await jwt.verify(await signToken(key1Rotated))).ok).toBe(true);
  });

  it("refuses a cached token once the key without kid that verified it is removed", async () => {
    const jwks = await startJwksServer([withoutKid(key1.jwk), key2.jwk]);
    const jwt = await startedVerifier(jwks);
    const token = await signToken(key1, claims(), { kid: undefined });
    expect((await jwt.verify(token)).ok).toBe(true);

    jwks.setKeys([key2.jwk]);
    await refresh(jwt, jwks, key2);
    expect(await jwt.verify(token)).toMatchObject({ ok: false, code: "invalid_token" });
    expect(jwt.stats()).toMatchObject({ verifications: 2, cacheHits: 0, cacheInvalidations: 1 });
  });

  it("keeps the tokens of keys that stay when an unrelated key is withdrawn", async () => {
    const jwks = await startJwksServer([key1.jwk, key2.jwk]);
    const jwt = await startedVerifier(jwks);
    const kept = await signToken(key1);
    const dropped = await signToken(key2);
    expect((await jwt.verify(kept)).ok).toBe(true);
    expect((await jwt.verify(dropped)).ok).toBe(true);
    expect(jwt.stats()).toMatchObject({ verifications: 2, cacheHits: 0 });

    // key-2 withdrawn, key-3 added: key-1's token is still good and stays cached.
    jwks.setKeys([key1.jwk, key3.jwk]);
    await refresh(jwt, jwks, key1);
    const fetches = jwks.requests;
    expect((await jwt.verify(kept)).ok).toBe(true);
    // Answering from the cache cost no signature check and no JWKS fetch.
    expect(jwt.stats()).toMatchObject({ verifications: 2, cacheHits: 1, cacheInvalidations: 1 });
    expect(jwks.requests).toBe(fetches);
    expect(await jwt.verify(dropped)).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("remembers which of several kid-less keys verified a token", async () => {
    const jwks = await startJwksServer([withoutKid(key1.jwk), withoutKid(key2.jwk)]);
    const jwt = await startedVerifier(jwks);
    const byKey2 = await signToken(key2, claims(), { kid: undefined });
    const byKey1 = await signToken(key1, claims(), { kid: undefined });
    expect((await jwt.verify(byKey2)).ok).toBe(true);
    expect((await jwt.verify(byKey1)).ok).toBe(true);

    jwks.setKeys([withoutKid(key2.jwk)]);
    await refresh(jwt, jwks, key2);
    expect((await jwt.verify(byKey2)).ok).toBe(true);
    expect(jwt.stats()).toMatchObject({ verifications: 2, cacheHits: 1, cacheInvalidations: 1 });
    expect(await jwt.verify(byKey1)).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("drops what a key verified when the background refresh finds it replaced", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })], { refreshIntervalMs: 1 });
    await jwt.start();
    const token = await signToken(key1);
    expect((await jwt.verify(token)).ok).toBe(true);

    jwks.setKeys([key1Rotated.jwk]);
    // No request asks for anything new: the periodic refresh alone must do it.
    await eventually(() => jwt.stats().cacheInvalidations === 1, 30_000);
    expect(await jwt.verify(token)).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("keeps every cached token when a refresh returns the same keys", async () => {
    const jwks = await startJwksServer([key1.jwk, withoutKid(key2.jwk)]);
    const jwt = await startedVerifier(jwks);
    const tokens = [await signToken(key1), await signToken(key2, claims(), { kid: undefined })];
    for (const token of tokens) expect((await jwt.verify(token)).ok).toBe(true);
    // The same keys, serialised in another order, are the same keys.
    jwks.setKeys([withoutKid(key2.jwk), { ...key1.jwk }]);
    await refresh(jwt, jwks, key1);
    for (const token of tokens) expect((await jwt.verify(token)).ok).toBe(true);
    expect(jwt.stats()).toMatchObject({ verifications: 2, cacheHits: 2, cacheInvalidations: 0 });
  });
});
