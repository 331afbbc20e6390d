import fc from "fast-check";
import { createLocalJWKSet, errors, exportSPKI, jwtVerify } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import type { JwtVerifier } from "../../src/jwt/verifier.js";
import {
  base64url,
  claims,
  issuerConfig,
  newSigningKey,
  type SigningKey,
  signHs256,
  signRawRs256,
  signToken,
  startJwksServer,
  verifier,
} from "../helpers/jwks.js";

const ADMIN_ISSUER = "https://admin.example.com/";

let key: SigningKey;
let adminKey: SigningKey;
let attackerKey: SigningKey;
beforeAll(async () => {
  [key, adminKey, attackerKey] = await Promise.all([
    newSigningKey("key-1"),
    newSigningKey("admin-1"),
    newSigningKey("attacker-1"),
  ]);
});

async function started(): Promise<JwtVerifier> {
  const jwks = await startJwksServer([key.jwk]);
  const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
  await jwt.start();
  return jwt;
}

function payloadOf(token: string): string {
  return token.split(".")[1] ?? "";
}

describe("JWT verifier: attacks", () => {
  it.each(["none", "None", "NONE"])("rejects alg %s without checking a signature", async (alg) => {
    const jwt = await started();
    const unsigned = `${base64url({ alg, typ: "JWT" })}.${base64url(claims())}.`;
    expect(await jwt.verify(unsigned)).toEqual({
      ok: false,
      code: "invalid_token",
      reason: "algorithm not allowed for this issuer",
    });
    expect(jwt.stats().verifications).toBe(0);
  });

  it("rejects HS256 signed with the RSA public key (PEM or JWK bytes) as the HMAC secret", async () => {
    const jwt = await started();
    const pem = await exportSPKI(key.publicKey);
    for (const secret of [pem, `${pem}\n`, JSON.stringify(key.jwk)]) {
      const forged = signHs256(secret, { kid: key.kid, typ: "JWT" }, claims());
      expect(await jwt.verify(forged)).toMatchObject({ ok: false, code: "invalid_token" });
    }
  });

  it("relies on jose too: an RSA-only key set with an RS256 allow-list never verifies HS256", async () => {
    // The verifier refuses HS256 before jose is called; this proves the
    // second line of defence holds on its own.
    const forged = signHs256(await exportSPKI(key.publicKey), { kid: key.kid }, claims());
    const keySet = createLocalJWKSet({ keys: [key.jwk] });
    await expect(jwtVerify(forged, keySet, { algorithms: ["RS256"] })).rejects.toBeInstanceOf(
      errors.JOSEAlgNotAllowed,
    );
    await expect(jwtVerify(forged, keySet)).rejects.toBeInstanceOf(errors.JOSENotSupported);
  });

  it("rejects a tampered payload", async () => {
    const jwt = await started();
    const token = await signToken(key);
    const [header, , signature] = token.split(".");
    const escalated = base64url({ ...claims(), scope: "sources:write runs:apply keys:admin" });
    const result = await jwt.verify(`${header}.${escalated}.${signature}`);
    expect(result).toMatchObject({ ok: false, code: "invalid_token" });
    expect(result.ok || result.reason).toMatch(/SIGNATURE_VERIFICATION_FAILED/);
  });

  it("rejects a signature whose unused trailing bits differ (non-canonical base64url)", async () => {
    const jwt = await started();
    const token = await signToken(key);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const last = token.at(-1) ?? "A";
    // A 256-byte signature leaves 4 unused bits in its last character.
    const twin = `${token.slice(0, -1)}${alphabet[alphabet.indexOf(last) ^ 1]}`;
    const signatureOf = (t: string) => Buffer.from(t.split(".")[2] ?? "", "base64url");
    expect(signatureOf(twin)).toEqual(signatureOf(token));
    expect((await jwt.verify(token)).ok).toBe(true);
    expect(await jwt.verify(twin)).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("rejects issuer A's token signed with issuer B's key", async () => {
    const [jwksA, jwksB] = await Promise.all([
      startJwksServer([key.jwk]),
      startJwksServer([adminKey.jwk]),
    ]);
    const jwt = verifier([
      issuerConfig({ jwks_uri: jwksA.url }),
      issuerConfig({ issuer: ADMIN_ISSUER, jwks_uri: jwksB.url, role: "admin" }),
    ]);
    await jwt.start();
    // B's kid is not in A's key set.
    expect(await jwt.verify(await signToken(adminKey, claims()))).toMatchObject({
      ok: false,
      code: "invalid_token",
    });
    // B's key under A's kid: the signature does not check.
    expect(await jwt.verify(await signToken(adminKey, claims(), { kid: key.kid }))).toMatchObject({
      ok: false,
      code: "invalid_token",
    });
    // Each issuer's own tokens still verify, with its own role.
    const admin = await jwt.verify(await signToken(adminKey, claims({ iss: ADMIN_ISSUER })));
    expect(admin.ok && admin.identity.role).toBe("admin");
    const researcher = await jwt.verify(await signToken(key));
    expect(researcher.ok && researcher.identity.role).toBe("researcher");
  });

  it("rejects a token signed by a key the issuer never published", async () => {
    const jwt = await started();
    const forged = await signToken(attackerKey, claims(), { kid: key.kid });
    expect(await jwt.verify(forged)).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("rejects an embedded jwk header even when it names the attacker's own key", async () => {
    const jwt = await started();
    const header = { alg: "RS256", kid: key.kid, jwk: attackerKey.jwk };
    expect(await jwt.verify(signRawRs256(attackerKey, header, claims()))).toEqual({
      ok: false,
      code: "invalid_token",
      reason: '"jwk" header parameter is not accepted',
    });
  });

  it.each([
    ["jwk", { kty: "RSA", n: "AQAB", e: "AQAB" }],
    ["jku", "https://evil.example.com/jwks.json"],
    ["x5u", "https://evil.example.com/cert.pem"],
    ["x5c", ["MIIB"]],
    ["crit", ["exp"]],
  ])("rejects a %s header even on a correctly signed token", async (name, value) => {
    const jwt = await started();
    const header = { alg: "RS256", kid: key.kid, [name]: value, exp: 1 };
    expect(await jwt.verify(signRawRs256(key, header, claims()))).toEqual({
      ok: false,
      code: "invalid_token",
      reason: `"${name}" header parameter is not accepted`,
    });
    // The same header without the parameter verifies, so the parameter is the reason.
    expect((await jwt.verify(signRawRs256(key, { alg: "RS256", kid: key.kid }, claims()))).ok).toBe(
      true,
    );
  });

  it("rejects an oversized token without parsing it", async () => {
    const jwt = await started();
    const huge = await signToken(key, claims({ padding: "x".repeat(9_000) }));
    expect(await jwt.verify(huge)).toEqual({
      ok: false,
      code: "invalid_token",
      reason: "token empty or longer than 8192 characters",
    });
    expect(jwt.stats().verifications).toBe(0);
  });

  it("never throws on garbage", async () => {
    const jwt = await started();
    const garbage = [
      "",
      ".",
      "..",
      "a.b",
      "a.b.c",
      "sk_live_x",
      "e30.e30.",
      "e30.W10.",
      "null.null.null",
    ];
    for (const input of [...garbage, undefined, 42, null, {}] as string[]) {
      expect(await jwt.verify(input)).toMatchObject({ ok: false, code: "invalid_token" });
    }
  });

  it("never accepts a mutation of a valid token (property, 1000 runs)", async () => {
    const jwt = await started();
    const token = await signToken(key);
    expect(payloadOf(token).length).toBeGreaterThan(0);
    const characters =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %\n".split("");
    const position = fc.nat({ max: token.length });
    const mutation = fc.oneof(
      fc.record({
        kind: fc.constant("flip" as const),
        at: position,
        char: fc.constantFrom(...characters),
      }),
      // Extra weight on the signature's tail, where unused bits live.
      fc.record({
        kind: fc.constant("flip" as const),
        at: fc.integer({ min: token.length - 3, max: token.length - 1 }),
        char: fc.constantFrom(...characters),
      }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: position,
        char: fc.constantFrom(...characters),
      }),
      fc.record({ kind: fc.constant("delete" as const), at: position }),
      fc.record({
        kind: fc.constant("swap" as const),
        a: fc.nat({ max: 2 }),
        b: fc.nat({ max: 2 }),
      }),
    );
    type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;
    const apply = (input: string, m: Mutation): string => {
      switch (m.kind) {
        case "flip": {
          const at = Math.min(m.at, input.length - 1);
          return input.slice(0, at) + m.char + input.slice(at + 1);
        }
        case "insert":
          return input.slice(0, m.at) + m.char + input.slice(m.at);
        case "delete":
          return input.slice(0, m.at) + input.slice(m.at + 1);
        case "swap": {
          const parts = input.split(".");
          const a = parts[m.a];
          const b = parts[m.b];
          if (a === undefined || b === undefined) return input;
          parts[m.a] = b;
          parts[m.b] = a;
          return parts.join(".");
        }
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        const mutated = mutations.reduce(apply, token);
        const result = await jwt.verify(mutated);
        expect(result.ok).toBe(mutated === token);
      }),
      { numRuns: 1_000 },
    );
  });
});
