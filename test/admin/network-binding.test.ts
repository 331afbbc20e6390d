import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, keyOf, refusal, rest, startAdminFixture } from "../helpers/admin.js";
import { denial } from "../helpers/envoy-client.js";

describe("keys bound to networks (allowedCidrs)", () => {
  let f: AdminFixture;
  let db: Db;

  beforeAll(async () => {
    // The forward-auth client below connects from 127.0.0.1: trust it as the proxy.
    f = await startAdminFixture({ forward_auth: { trusted_proxies: ["127.0.0.1/32"] } });
    db = openDatabase(f.kw.database);
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  /** Check's answer for a GET /api/v1/sources from `source`. */
  async function fromAddress(token: string, source?: string): Promise<string> {
    const response = await f.check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${token}` },
      ...(source !== undefined && { sourceAddress: source }),
    });
    if (response.status?.code === 0) return "allow";
    return denial(response).body.error;
  }

  /** /authz's status and error for a request forwarded with these headers. */
  async function authz(token: string, headers: Record<string, string> = {}) {
    const response = await fetch(`http://127.0.0.1:${f.kw.ports.http}/authz`, {
      headers: {
        authorization: `Bearer ${token}`,
        "x-original-method": "GET",
        "x-original-uri": "/api/v1/sources",
        ...headers,
      },
    });
    const text = await response.text();
    return {
      status: response.status,
      error: text ? JSON.parse(text).error : "",
      headers: response.headers,
    };
  }

  it("allows a key only from its networks (IPv4 and IPv6), denying elsewhere with 403 ip_not_allowed", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({
      kind: "live",
      scopes: ["sources:read"],
      allowedCidrs: ["10.1.0.0/16", "2001:db8::/32", "192.0.2.7"],
    });
    expect(keyOf(created).allowedCidrs).toEqual(["10.1.0.0/16", "2001:db8::/32", "192.0.2.7"]);
    for (const inside of ["10.1.2.3", "2001:db8::1", "192.0.2.7", "::ffff:10.1.9.9"]) {
      expect(await fromAddress(created.secret, inside), inside).toBe("allow");
    }
    for (const outside of ["10.2.0.1", "2001:db9::1", "192.0.2.8", "not-an-ip", undefined]) {
      expect(await fromAddress(created.secret, outside), String(outside)).toBe("ip_not_allowed");
    }
    const response = await f.check.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${created.secret}` },
      sourceAddress: "10.2.0.1",
    });
    const denied = denial(response);
    expect([denied.grpcCode, denied.httpStatus]).toEqual([7, "Forbidden"]);
    expect(denied.headers["www-authenticate"]).toBeUndefined();
  });

  it("leaves a key without CIDRs usable from anywhere, and lifts a binding with UpdateKey", async () => {
    const root = f.client(f.rootToken);
    const free = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    expect(keyOf(free).allowedCidrs).toEqual([]);
    expect(await fromAddress(free.secret, "203.0.113.5")).toBe("allow");
    expect(await fromAddress(free.secret)).toBe("allow");

    const bound = await rest(f, "PATCH", `/v1/admin/keys/${keyOf(free).id}`, {
      token: f.rootToken,
      body: { allowedCidrs: ["198.51.100.0/24"] },
    });
    expect(bound.body.key).toMatchObject({ allowedCidrs: ["198.51.100.0/24"] });
    expect(await fromAddress(free.secret, "203.0.113.5")).toBe("ip_not_allowed");
    await rest(f, "PATCH", `/v1/admin/keys/${keyOf(free).id}`, {
      token: f.rootToken,
      body: { allowedCidrs: [] },
    });
    expect(await fromAddress(free.secret, "203.0.113.5")).toBe("allow");
  });

  it("takes /authz's client from x-forwarded-for or x-real-ip only behind a trusted proxy", async () => {
    const created = await f.client(f.rootToken).createKey({
      kind: "live",
      scopes: ["sources:read"],
      allowedCidrs: ["198.51.100.0/24"],
    });
    // From 127.0.0.1, a trusted proxy: the right-most untrusted hop is the client.
    expect((await authz(created.secret, { "x-forwarded-for": "198.51.100.9" })).status).toBe(200);
    expect(
      (await authz(created.secret, { "x-forwarded-for": "198.51.100.9, 127.0.0.1" })).status,
    ).toBe(200);
    // A client's own claim further left does not help it.
    const spoofed = await authz(created.secret, { "x-forwarded-for": "198.51.100.9, 203.0.113.1" });
    expect([spoofed.status, spoofed.error]).toEqual([403, "ip_not_allowed"]);
    expect((await authz(created.secret, { "x-real-ip": "198.51.100.10" })).status).toBe(200);
    // Without either header the peer itself (127.0.0.1) is the client.
    expect((await authz(created.secret)).error).toBe("ip_not_allowed");
  });

  it("refuses a malformed CIDR naming the field, and audits the change", async () => {
    const root = f.client(f.rootToken);
    for (const cidr of ["10.0.0.0/33", "10.0.0", "fe80::/129", "10.0.0.0/8/1", ""]) {
      const error = await refusal(
        root.createKey({ kind: "live", scopes: ["sources:read"], allowedCidrs: [cidr] }),
      );
      expect(error.rawMessage, cidr).toMatch(/^allowedCidrs: .* is not an IPv4 or IPv6 CIDR/);
    }
    const created = await root.createKey({ kind: "live", scopes: ["sources:read"] });
    const answer = await rest(f, "PATCH", `/v1/admin/keys/${keyOf(created).id}`, {
      token: f.rootToken,
      body: { allowedCidrs: ["10.0.0.0/8"] },
    });
    expect(answer.status).toBe(200);
    expect(new AuditLog(db).list({ keyId: keyOf(created).id })[0]?.action).toBe("UpdateKey");
  });
});
