import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, startAdminFixture } from "../helpers/admin.js";
import { denial, structToJson } from "../helpers/envoy-client.js";
import { claims, ISSUER, newSigningKey, signToken } from "../helpers/jwks.js";

describe("structured logs", () => {
  let f: AdminFixture;
  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => f.close());

  it("never contains a minted secret or a whole token, through a full scenario", async () => {
    expectNoSecret(f, await fullScenario(f));
  });

  it("writes one line per denied Check with the decision id also in the body and metadata; allows are quiet at info", async () => {
    const { secret } = f.kw.store.create({ kind: "live", scopes: ["sources:read"] });
    const before = f.kw.logs.lines.length;
    await decide(f.check, secret);
    await decide(f.check, secret);
    const allowLines = f.kw.logs.records
      .slice(before)
      .filter((r) => r.name === "check" && (r.level as number) >= 30);
    expect(allowLines).toEqual([]);

    const response = await f.check.check({
      method: "DELETE",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${secret}` },
    });
    const d = denial(response);
    expect(structToJson(response.dynamic_metadata).decision_id).toBe(d.body.decision_id);
    const lines = f.kw.logs.records.filter((r) => r.decision_id === d.body.decision_id);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      name: "check",
      error: "insufficient_scope",
      method: "DELETE",
      path: "/api/v1/sources",
    });
    expect(lines[0]?.key_id).toMatch(/^[0-9a-f]{16}$/);
  });
});

/** Keys and JWTs minted, used, rotated, revoked, forged; returns every secret that went by. */
async function fullScenario(f: AdminFixture): Promise<string[]> {
  const secrets: string[] = [];
  const root = f.client(f.rootToken);
  secrets.push(f.rootToken);
  // Keys: create, use, rotate, revoke, expire, and an idempotent retry.
  const created = await root.createKey({
    kind: "live",
    scopes: ["sources:read"],
    idempotencyKey: "k-1",
  });
  secrets.push(created.secret);
  await root.createKey({ kind: "live", scopes: ["sources:read"], idempotencyKey: "k-1" });
  await decide(f.check, created.secret);
  const rotated = await root.rotateKey({ id: created.key?.id ?? "" });
  secrets.push(rotated.secret);
  await decide(f.check, created.secret);
  await root.revokeKey({ id: created.key?.id ?? "" });
  await decide(f.check, rotated.secret);
  // JWTs: admin, researcher, forged, expired; keys minted with them.
  const admin = await f.adminJwt("acme");
  const researcher = await f.researcherJwt("auth0|ada", ["sources:read"]);
  const forged = await signToken(await newSigningKey("nope"), claims({ iss: ISSUER }));
  secrets.push(admin, researcher, forged);
  secrets.push((await f.client(admin).createKey({ scopes: ["sources:read"] })).secret);
  secrets.push((await f.client(researcher).createKey({ scopes: ["sources:read"] })).secret);
  await decide(f.check, researcher);
  await decide(f.check, forged);
  await expect(f.client(forged).listKeys({})).rejects.toThrow();
  await expect(f.client(created.secret).listKeys({})).rejects.toThrow();
  // A secret pasted where an id belongs.
  await expect(root.getKey({ id: rotated.secret })).rejects.toThrow();
  // Forward-auth too.
  await fetch(`http://127.0.0.1:${f.kw.ports.http}/authz/api/v1/sources`, {
    headers: { authorization: `Bearer ${rotated.secret}` },
  });

  return secrets;
}

/** The server's log holds none of the secrets, nor any key's secret part. */
function expectNoSecret(f: AdminFixture, secrets: readonly string[]): void {
  const text = f.kw.logs.text;
  expect(f.kw.logs.lines.length).toBeGreaterThan(5);
  for (const secret of secrets) {
    expect(text).not.toContain(secret);
    // Not even the secret part of a key, nor the signature of a JWT.
    expect(text).not.toContain(secret.slice(-40));
  }
  expect(text).not.toMatch(/sk_(live|user|agent|worker)_[0-9a-f]{16}_[0-9a-f]{8}/);
}

// With every allow logged (log.allow_sample_rate: 1), the same scenario
// writes allow lines too, and they hold no secret either.
describe("structured logs with sampled allows", () => {
  let f: AdminFixture;
  beforeAll(async () => {
    f = await startAdminFixture({ log: { allow_sample_rate: 1 } });
  });
  afterAll(async () => f.close());

  it("never contains a minted secret or a whole token in allow lines either", async () => {
    const secrets = await fullScenario(f);
    const allows = f.kw.logs.records.filter((record) => record.msg === "check allowed");
    expect(allows.length).toBeGreaterThanOrEqual(2);
    expect(allows.map((record) => record.outcome)).toEqual(allows.map(() => "allow"));
    expectNoSecret(f, secrets);
  });
});
