import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  claims,
  eventually,
  issuerConfig,
  newSigningKey,
  type SigningKey,
  signToken,
  startJwksServer,
  unreachableUrl,
  verifier,
} from "../helpers/jwks.js";

let key1: SigningKey;
let key2: SigningKey;
beforeAll(async () => {
  [key1, key2] = await Promise.all([newSigningKey("key-1"), newSigningKey("key-2")]);
});

describe("JWKS from a URL", () => {
  it("loads every issuer at start and reports readiness", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
    expect(jwt.ready()).toBe(false);
    expect(jwt.status()).toEqual([{ issuer: "https://tenant.eu.auth0.com/", loaded: false }]);
    await jwt.start();
    expect(jwt.ready()).toBe(true);
    expect(jwt.status()).toEqual([
      { issuer: "https://tenant.eu.auth0.com/", loaded: true, lastFetchAt: expect.any(Number) },
    ]);
    expect(jwks.requests).toBe(1);
    expect(jwt.stats()).toMatchObject({ jwksFetches: 1, jwksFailures: 0 });
  });

  it("fetches the new kid when the IdP rotates keys, and drops the withdrawn one", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
    await jwt.start();
    const old = await signToken(key1);
    expect((await jwt.verify(old)).ok).toBe(true);

    jwks.setKeys([key2.jwk]);
    expect((await jwt.verify(await signToken(key2))).ok).toBe(true);
    expect(jwks.requests).toBe(2);
    // The old token was cached; the withdrawn key must not keep it alive.
    expect(await jwt.verify(old)).toMatchObject({ ok: false, code: "invalid_token" });
  });

  it("keeps allowing with cached keys when the IdP goes down after the first fetch", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })], { refetchCooldownMs: 0 });
    await jwt.start();
    await jwks.close();

    expect((await jwt.verify(await signToken(key1))).ok).toBe(true);
    // An unknown kid makes it try the IdP, which fails; the failure is
    // reported but the issuer stays loaded and its known keys keep working.
    expect(await jwt.verify(await signToken(key2))).toMatchObject({
      ok: false,
      code: "invalid_token",
    });
    expect(jwt.status()).toEqual([
      expect.objectContaining({ loaded: true, lastError: expect.stringMatching(/ECONNREFUSED/) }),
    ]);
    expect(jwt.ready()).toBe(true);
    expect((await jwt.verify(await signToken(key1))).ok).toBe(true);
    expect(jwt.stats()).toMatchObject({ jwksFetches: 2, jwksFailures: 1 });
  });

  it("bounds JWKS fetches under a flood of invented kids", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
    await jwt.start();
    const forged = await Promise.all(
      Array.from({ length: 200 }, () =>
        signToken(key1, claims(), { kid: randomBytes(8).toString("hex") }),
      ),
    );
    const concurrent = await Promise.all(forged.slice(0, 100).map((token) => jwt.verify(token)));
    const sequential = [];
    for (const token of forged.slice(100)) sequential.push(await jwt.verify(token));
    for (const result of [...concurrent, ...sequential]) {
      expect(result).toMatchObject({ ok: false, code: "invalid_token" });
    }
    // One at start, then at most one per cooldown (30 s by default).
    expect(jwks.requests).toBe(2);
    expect(jwt.stats().verifications).toBe(0);
  });

  it("answers unavailable when the JWKS has never loaded", async () => {
    const jwt = verifier([issuerConfig({ jwks_uri: await unreachableUrl() })]);
    await jwt.start();
    expect(jwt.ready()).toBe(false);
    expect(jwt.status()).toEqual([
      expect.objectContaining({ loaded: false, lastError: expect.stringMatching(/ECONNREFUSED/) }),
    ]);
    const token = await signToken(key1);
    expect(await jwt.verify(token)).toEqual({
      ok: false,
      code: "unavailable",
      reason: "issuer JWKS has never loaded",
    });
    // The on-demand retry is rate-limited like any other request-driven load.
    expect(await jwt.verify(token)).toMatchObject({ code: "unavailable" });
    expect(jwt.stats()).toMatchObject({ jwksFetches: 2, jwksFailures: 2 });
  });

  it("loads on demand when verify comes before start", async () => {
    const jwks = await startJwksServer([key1.jwk]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
    expect((await jwt.verify(await signToken(key1))).ok).toBe(true);
    expect(jwt.ready()).toBe(true);
  });

  it("gives up on a JWKS server that does not answer within fetchTimeoutMs", async () => {
    const silent = createServer(() => {}); // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const jwt = verifier([issuerConfig({ jwks_uri: `http://127.0.0.1:${port}/jwks` })], {
        fetchTimeoutMs: 200,
      });
      const started = Date.now();
      await jwt.start();
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(jwt.status()).toEqual([
        expect.objectContaining({ loaded: false, lastError: "timed out after 200 ms" }),
      ]);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it("verifies a token without kid against a key set holding several keys of its type", async () => {
    const strip = ({ kid: _kid, ...rest }: JWK): JWK => rest;
    const jwks = await startJwksServer([strip(key1.jwk), strip(key2.jwk)]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
    await jwt.start();
    expect((await jwt.verify(await signToken(key2, claims(), { kid: undefined }))).ok).toBe(true);
  });

  it("refuses a key set holding only a shared secret", async () => {
    const jwks = await startJwksServer([{ kty: "oct", k: "c2VjcmV0", kid: "hmac" }]);
    const jwt = verifier([issuerConfig({ jwks_uri: jwks.url })]);
    await jwt.start();
    expect(jwt.status()).toEqual([
      expect.objectContaining({ loaded: false, lastError: "JWK Set holds no public signing keys" }),
    ]);
  });
});

describe("JWKS from a file", () => {
  let dir: string;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loads the file at start and reloads it when it changes", async () => {
    dir = await mkdtemp(join(tmpdir(), "keyward-jwks-"));
    const file = join(dir, "jwks.json");
    await writeFile(file, JSON.stringify({ keys: [key1.jwk] }));
    const jwt = verifier([issuerConfig({ jwks_file: file })], { fileWatchIntervalMs: 20 });
    await jwt.start();
    expect(jwt.ready()).toBe(true);
    expect((await jwt.verify(await signToken(key1))).ok).toBe(true);

    await writeFile(file, JSON.stringify({ keys: [key2.jwk] }));
    // The watcher reloads on its own: no request has to ask for the new kid.
    await eventually(() => jwt.stats().jwksFetches >= 2);
    expect(jwt.stats().jwksFailures).toBe(0);
    expect((await jwt.verify(await signToken(key2))).ok).toBe(true);
    expect(await jwt.verify(await signToken(key1))).toMatchObject({ ok: false });
  });

  it("keeps the last good keys when the file turns invalid", async () => {
    dir = await mkdtemp(join(tmpdir(), "keyward-jwks-"));
    const file = join(dir, "jwks.json");
    await writeFile(file, JSON.stringify({ keys: [key1.jwk] }));
    const jwt = verifier([issuerConfig({ jwks_file: file })], { fileWatchIntervalMs: 20 });
    await jwt.start();
    await writeFile(file, "{ not json");
    await eventually(() => jwt.stats().jwksFailures >= 1);
    expect(jwt.status()).toEqual([
      expect.objectContaining({ loaded: true, lastError: expect.any(String) }),
    ]);
    expect((await jwt.verify(await signToken(key1))).ok).toBe(true);
  });

  it("answers unavailable while the file is missing", async () => {
    dir = await mkdtemp(join(tmpdir(), "keyward-jwks-"));
    const jwt = verifier([issuerConfig({ jwks_file: join(dir, "absent.json") })]);
    await jwt.start();
    expect(jwt.ready()).toBe(false);
    expect(await jwt.verify(await signToken(key1))).toMatchObject({ code: "unavailable" });
  });
});
