import { fromJson } from "@bufbuild/protobuf";
import { ListValueSchema, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, decide, keyOf, rest, startAdminFixture } from "../helpers/admin.js";
import { allowance, structToJson } from "../helpers/envoy-client.js";

describe("key metadata and UpdateKey", () => {
  let f: AdminFixture;
  let db: Db;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  async function checkMetadata(token: string): Promise<Record<string, unknown>> {
    const response = await f.check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${token}` },
    });
    allowance(response);
    return structToJson(response.dynamic_metadata);
  }

  it("carries a key's metadata in the admin Key and in Check's dynamic metadata as meta", async () => {
    const meta = { plan: "pro", customer: "cus_42", seats: 5, beta: true, regions: ["eu", "us"] };
    const created = await f
      .client(f.rootToken)
      .createKey({ kind: "live", tenant: "acme", scopes: ["sources:read"], metadata: meta });
    expect(keyOf(created).metadata).toEqual(meta);
    expect(keyOf(await f.client(f.rootToken).getKey({ id: keyOf(created).id })).metadata).toEqual(
      meta,
    );
    const response = await f.check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${created.secret}` },
    });
    const fields = response.dynamic_metadata?.fields ?? {};
    expect(fields.meta?.kind).toMatch(/struct_value|structValue/);
    const plain = await checkMetadata(created.secret);
    expect(plain.key_id).toBe(keyOf(created).id);
    expect(structToJson(plain.meta as Parameters<typeof structToJson>[0])).toEqual(meta);
    const noMeta = await f
      .client(f.rootToken)
      .createKey({ kind: "live", scopes: ["sources:read"] });
    expect((await checkMetadata(noMeta.secret)).meta).toBeUndefined();
    expect(keyOf(noMeta).metadata).toBeUndefined();
  });

  it("updates name, scopes, expiry and metadata, keeping the id and the secret", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", name: "old", scopes: ["sources:read"] });
    const id = keyOf(created).id;
    expect(await decide(f.check, created.secret, "/api/v1/sources", "POST")).toBe(
      "insufficient_scope",
    );
    const expiresAt = Date.now() + 86_400_000;
    const updated = keyOf(
      await root.updateKey({
        id,
        name: "new",
        scopes: fromJson(ListValueSchema, ["sources:read", "sources:write"]),
        expiresAt: timestampFromMs(expiresAt),
        metadata: { plan: "enterprise" },
      }),
    );
    expect(updated).toMatchObject({ id, name: "new", scopes: ["sources:read", "sources:write"] });
    expect(updated.expiresAt && timestampMs(updated.expiresAt)).toBe(expiresAt);
    expect(updated.metadata).toEqual({ plan: "enterprise" });
    expect(await decide(f.check, created.secret, "/api/v1/sources", "POST")).toBe("allow");

    // Only what is set changes; {} removes the metadata.
    const renamed = keyOf(await root.updateKey({ id, name: "newer" }));
    expect(renamed).toMatchObject({ name: "newer", scopes: ["sources:read", "sources:write"] });
    expect(renamed.metadata).toEqual({ plan: "enterprise" });
    expect(keyOf(await root.updateKey({ id, metadata: {} })).metadata).toBeUndefined();
    expect((await checkMetadata(created.secret)).meta).toBeUndefined();
  });

  it("works over REST: metadata on create and PATCH /v1/admin/keys/{id}", async () => {
    const created = await rest(f, "POST", "/v1/admin/keys", {
      token: f.rootToken,
      body: { name: "rest", scopes: ["sources:read"], metadata: { tier: "gold" } },
    });
    expect(created.status).toBe(201);
    const key = created.body.key as { id: string; metadata: unknown };
    expect(key.metadata).toEqual({ tier: "gold" });
    const patched = await rest(f, "PATCH", `/api/v1/admin/keys/${key.id}`, {
      token: f.rootToken,
      body: { scopes: ["sources:read", "items:read"], metadata: { tier: "silver" } },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.key).toMatchObject({
      id: key.id,
      scopes: ["sources:read", "items:read"],
      metadata: { tier: "silver" },
    });
    const meta = (await checkMetadata(created.body.secret as string)).meta;
    expect(structToJson(meta as Parameters<typeof structToJson>[0])).toEqual({ tier: "silver" });
  });

  it("audits every update", async () => {
    const admin = f.client(await f.adminJwt("audited"));
    const created = await admin.createKey({ scopes: ["sources:read"] });
    await admin.updateKey({ id: keyOf(created).id, name: "renamed" });
    expect(new AuditLog(db).list({ keyId: keyOf(created).id })[0]).toMatchObject({
      action: "UpdateKey",
      tenant: "audited",
      outcome: "ok",
    });
  });
});
