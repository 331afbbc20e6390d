// A bench identity provider: one RS256 key, its JWKS file, and access tokens
// signed with node:crypto (as an IdP would; keyward verifies them with jose).
import { generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { writeFileSync } from "node:fs";

export const BENCH_ISSUER = "https://bench.keyward.example/";
export const BENCH_AUDIENCE = "https://api.example.com";
const KID = "bench-rs256";

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** Creates a 2048-bit RSA signing key and writes its public JWKS to `jwksFile`. */
export function createIssuer(jwksFile) {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = { ...publicKey.export({ format: "jwk" }), kid: KID, alg: "RS256", use: "sig" };
  writeFileSync(jwksFile, JSON.stringify({ keys: [jwk] }));
  const header = base64url({ alg: "RS256", typ: "JWT", kid: KID });
  return {
    /** The `issuers:` entry for keyward's config. */
    config: {
      issuer: BENCH_ISSUER,
      audience: BENCH_AUDIENCE,
      jwks_file: jwksFile,
      algorithms: ["RS256"],
      scopes_claim: "scope",
    },
    /** A valid access token (1 h) for subject number `n`, granting sources:read; `extra` claims override. */
    token(n = 0, extra = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload = base64url({
        iss: BENCH_ISSUER,
        aud: BENCH_AUDIENCE,
        sub: `auth0|bench-${n}`,
        iat: now,
        exp: now + 3600,
        jti: randomUUID(),
        scope: "sources:read runs:read",
        ...extra,
      });
      const input = `${header}.${payload}`;
      return `${input}.${sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
    },
  };
}
