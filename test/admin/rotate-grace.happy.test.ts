import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, keyOf, rest, startAdminFixture } from "../helpers/admin.js";
import { waitUntil } from "../helpers/cluster.js";
import { allowance, structToJson } from "../helpers/envoy-client.js";

describe("RotateKey with a grace period", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  /** Check's dynamic metadata for an allowed GET /api/v1/sources with `token`. */
  async function metadata(token: string): Promise<Record<string, unknown>> {
    const response = await f.check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${token}` },
    });
    allowance(response);
    return structToJson(response.dynamic_metadata);
  }

  async function previousAllows(): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${f.kw.ports.http}/metrics`)).text();
    const line = text
      .split("\n")
      .find((l) => l.startsWith('keyward_previous_secret_allows_total{transport="grpc"}'));
    return line ? Number(line.split(" ").pop()) : 0;
  }

  it("keeps the previous secret working as the same key, marked secret: previous, until the grace ends", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    const id = keyOf(created).id;
    const before = Date.now();
    const rotated = await root.rotateKey({ id, graceSeconds: 3600 });
    const key = keyOf(rotated);
    expect(key.id).toBe(id);
    const ends = key.previousSecretExpiresAt && timestampMs(key.previousSecretExpiresAt);
    expect(ends).toBeGreaterThanOrEqual(before + 3_600_000 - 1_000);
    expect(ends).toBeLessThanOrEqual(Date.now() + 3_600_000 + 1_000);
    expect(keyOf(await root.getKey({ id })).previousSecretExpiresAt).toEqual(
      key.previousSecretExpiresAt,
    );

    const counted = await previousAllows();
    const old = await metadata(created.secret);
    expect(old).toMatchObject({ key_id: id, tenant: "acme", secret: "previous" });
    const current = await metadata(rotated.secret);
    expect(current).toMatchObject({ key_id: id, tenant: "acme" });
    expect(current.secret).toBeUndefined();
    expect(await previousAllows()).toBe(counted + 1);
  });

  it("answers invalid_token for the previous secret once its grace is over", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const rotated = await root.rotateKey({ id: keyOf(created).id, graceSeconds: 1 });
    // Presented during the grace (it may be over already on a slow machine).
    const during = await decide(f.check, created.secret);
    expect(["allow", "invalid_token"]).toContain(during);
    await waitUntil(
      "the grace to end",
      async () => (await decide(f.check, created.secret)) === "invalid_token",
    );
    expect(await decide(f.check, rotated.secret)).toBe("allow");
    expect(
      keyOf(await root.getKey({ id: keyOf(created).id })).previousSecretExpiresAt,
    ).toBeUndefined();
  });

  it("ends the oldest secret at once on a second rotation, and both on revocation", async () => {
    const root = f.client(f.rootToken);
    const first = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(first).id;
    const second = await root.rotateKey({ id, graceSeconds: 3600 });
    const third = await root.rotateKey({ id, graceSeconds: 3600 });
    expect(await decide(f.check, first.secret)).toBe("invalid_token");
    expect(await decide(f.check, second.secret)).toBe("allow");
    expect(await decide(f.check, third.secret)).toBe("allow");
    // A rotation without grace ends the previous one too.
    const fourth = await root.rotateKey({ id });
    expect(keyOf(fourth).previousSecretExpiresAt).toBeUndefined();
    expect(await decide(f.check, third.secret)).toBe("invalid_token");

    const fifth = await root.rotateKey({ id, graceSeconds: 3600 });
    const revoked = keyOf(await root.revokeKey({ id }));
    expect(revoked.previousSecretExpiresAt).toBeUndefined();
    expect(await decide(f.check, fourth.secret)).not.toBe("allow");
    expect(await decide(f.check, fifth.secret)).toBe("key_revoked");
  });

  it("takes graceSeconds in the REST body, and none at all as today", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    const graced = await rest(f, "POST", `/v1/admin/keys/${id}/rotate`, {
      token: f.rootToken,
      body: { graceSeconds: 600 },
    });
    expect(graced.status).toBe(200);
    expect(graced.body.key).toMatchObject({ id, previousSecretExpiresAt: expect.any(String) });
    expect(await decide(f.check, created.secret)).toBe("allow");
    const plain = await rest(f, "POST", `/api/v1/admin/keys/${id}/rotate`, { token: f.rootToken });
    expect(plain.body.key).toMatchObject({ id, previousSecretExpiresAt: null });
    expect(await decide(f.check, graced.body.secret as string)).toBe("invalid_token");
    expect(await decide(f.check, plain.body.secret as string)).toBe("allow");
  });

  it("says secret: previous on /authz too, in x-keyward-secret", async () => {
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    const rotated = await f
      .client(f.rootToken)
      .rotateKey({ id: keyOf(created).id, graceSeconds: 60 });
    const authz = (token: string) =>
      fetch(`http://127.0.0.1:${f.kw.ports.http}/authz`, {
        headers: {
          authorization: `Bearer ${token}`,
          "x-original-method": "GET",
          "x-original-uri": "/api/v1/sources",
        },
      });
    const old = await authz(created.secret);
    expect(old.status).toBe(200);
    expect(old.headers.get("x-keyward-secret")).toBe("previous");
    const current = await authz(rotated.secret);
    expect(current.status).toBe(200);
    expect(current.headers.get("x-keyward-secret")).toBeNull();
  });
});
