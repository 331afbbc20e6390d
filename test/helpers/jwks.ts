import { createHmac, KeyObject, randomUUID, sign as signBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type CryptoKey,
  exportJWK,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import { afterEach } from "vitest";
import { type IssuerConfig, issuerSchema } from "../../src/config/issuers.js";
import {
  createJwtVerifier,
  type JwtVerifier,
  type JwtVerifierOptions,
} from "../../src/jwt/verifier.js";
import { createLogger } from "../../src/lib/log.js";

export const ISSUER = "https://tenant.eu.auth0.com/";
export const AUDIENCE = "https://api.example.com";

/** Teardown registered by the helpers below, run after every test. */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A JWKS endpoint on 127.0.0.1 that counts requests and can change its keys. */
export interface JwksServer {
  readonly url: string;
  readonly requests: number;
  setKeys(keys: readonly JWK[]): void;
  close(): Promise<void>;
}

/** Starts a real HTTP JWKS server on an ephemeral port; closed after the test. */
export async function startJwksServer(keys: readonly JWK[]): Promise<JwksServer> {
  let current = keys;
  let requests = 0;
  let closed = false;
  const server = createServer((_request, response) => {
    requests++;
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ keys: current }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const jwks: JwksServer = {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    get requests() {
      return requests;
    },
    setKeys(next) {
      current = next;
    },
    async close() {
      if (closed) return;
      closed = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(() => jwks.close());
  return jwks;
}

/** A URL on which nothing listens: a port that was just bound and released. */
export async function unreachableUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/.well-known/jwks.json`;
}

/** An IdP signing key: the private half signs, `jwk` is what the JWKS publishes. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly jwk: JWK;
}

export async function newSigningKey(kid: string, alg = "RS256"): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  return { kid, alg, privateKey, publicKey, jwk };
}

/** Epoch seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Claims of a valid access token from {@link ISSUER}; override any of them. */
export function claims(overrides: JWTPayload = {}): JWTPayload {
  const now = nowSeconds();
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "auth0|alice",
    iat: now,
    exp: now + 3600,
    jti: randomUUID(),
    scope: "sources:read runs:execute",
    ...overrides,
  };
}

/** Signs with jose, as an IdP would. */
export function signToken(
  key: SigningKey,
  payload: JWTPayload = claims(),
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

export function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/**
 * Signs an arbitrary header with RSASSA-PKCS1-v1_5 SHA-256 outside jose, for
 * headers jose's signer refuses to produce (crit, jwk, ...).
 */
export function signRawRs256(
  key: SigningKey,
  header: Record<string, unknown>,
  payload: JWTPayload,
): string {
  const input = `${base64url(header)}.${base64url(payload)}`;
  const signature = signBytes("sha256", Buffer.from(input), KeyObject.from(key.privateKey));
  return `${input}.${signature.toString("base64url")}`;
}

/** An HS256 token with the given bytes as the HMAC secret. */
export function signHs256(
  secret: Uint8Array | string,
  header: Record<string, unknown>,
  payload: JWTPayload,
) {
  const input = `${base64url({ alg: "HS256", ...header })}.${base64url(payload)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

/** Parses a config entry through the real schema (so defaults apply). */
export function issuerConfig(entry: Record<string, unknown>): IssuerConfig {
  return issuerSchema.parse({ issuer: ISSUER, audience: AUDIENCE, ...entry });
}

/** A verifier with a silent logger; closed after the test. */
export function verifier(
  issuers: readonly IssuerConfig[],
  options: Partial<Omit<JwtVerifierOptions, "issuers">> = {},
): JwtVerifier {
  const created = createJwtVerifier({
    logger: createLogger({ level: "silent" }),
    issuers,
    ...options,
  });
  cleanups.push(() => created.close());
  return created;
}

/** Polls until `condition` holds or `timeoutMs` passes. */
export async function eventually(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
