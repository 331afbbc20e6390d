import { timestampMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, keyOf, startAdminFixture } from "../helpers/admin.js";

describe("ListAuditEvents", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("lists a key's actions newest first, with actor, action, outcome and time", async () => {
    const admin = f.client(await f.adminJwt("acme"));
    const before = Date.now();
    const id = keyOf(await admin.createKey({ name: "audited", scopes: ["sources:read"] })).id;
    await admin.rotateKey({ id });
    await admin.revokeKey({ id });

    const { events, nextPageToken } = await admin.listAuditEvents({ keyId: id });
    expect(events.map((event) => event.action)).toEqual(["RevokeKey", "RotateKey", "CreateKey"]);
    for (const event of events) {
      expect(event).toMatchObject({
        keyId: id,
        outcome: "ok",
        actor: expect.stringMatching(/^jwt:https:\/\/admin\.portal\.example\.com\/#admin\|acme$/),
      });
      if (!event.time) throw new Error("event without a time");
      expect(timestampMs(event.time)).toBeGreaterThanOrEqual(before - 1_000);
    }
    const seqs = events.map((event) => event.seq);
    expect([...seqs].sort((a, b) => (a < b ? 1 : -1))).toEqual(seqs);
    expect(nextPageToken).toBe("");
  });

  it("leaves reads out unless include_reads asks for them", async () => {
    const root = f.client(f.rootToken);
    const id = keyOf(await root.createKey({ kind: "live", tenant: "reads" })).id;
    await root.getKey({ id });
    await root.listKeys({ tenant: "reads" });
    await root.rotateKey({ id });
    const changes = await root.listAuditEvents({ keyId: id });
    expect(changes.events.map((event) => event.action)).toEqual(["RotateKey", "CreateKey"]);
    const all = await root.listAuditEvents({ keyId: id, includeReads: true });
    expect(all.events.map((event) => event.action)).toEqual([
      "RotateKey",
      "ListKeys",
      "GetKey",
      "CreateKey",
    ]);
  });

  it("pages through a long trail with page tokens, each event once", async () => {
    const root = f.client(f.rootToken);
    const id = keyOf(await root.createKey({ kind: "live", tenant: "acme" })).id;
    for (let i = 0; i < 7; i++) await root.getKey({ id });
    const seen: bigint[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await root.listAuditEvents({
        keyId: id,
        pageSize: 3,
        pageToken,
        includeReads: true,
      });
      expect(page.events.length).toBeLessThanOrEqual(3);
      seen.push(...page.events.map((event) => event.seq));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(8);
    expect(new Set(seen).size).toBe(8);
    expect([...seen].sort((a, b) => (a < b ? 1 : -1))).toEqual(seen);
  });

  it("lets a researcher read the trail of its own key", async () => {
    const researcher = f.client(await f.researcherJwt("auth0|ada"));
    const id = keyOf(await researcher.createKey({ scopes: ["sources:read"] })).id;
    const { events } = await researcher.listAuditEvents({ keyId: id });
    expect(events.map((event) => event.action)).toEqual(["CreateKey"]);
  });

  it("never carries a secret, neither the created nor the rotated one", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", tenant: "acme" });
    const rotated = await root.rotateKey({ id: keyOf(created).id });
    const response = await fetch(`${f.adminUrl}/keyward.admin.v1.KeyService/ListAuditEvents`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${f.rootToken}` },
      body: JSON.stringify({ keyId: keyOf(created).id }),
    });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(JSON.parse(text).events).toHaveLength(2);
    expect(text).not.toContain(created.secret.slice(-48));
    expect(text).not.toContain(rotated.secret.slice(-48));
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const id = keyOf(await f.client(f.rootToken).createKey({ kind: "agent" })).id;
    const { events } = await f.grpcClient(f.rootToken).listAuditEvents({ keyId: id });
    expect(events.map((event) => event.action)).toEqual(["CreateKey"]);
  });
});
