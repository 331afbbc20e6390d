import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Key, KeyService, ListKeysRequest } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { type AdminFixture, startAdminFixture } from "../helpers/admin.js";

/** Every key a filter matches, following nextPageToken to the end. */
async function listAll(
  client: Client<typeof KeyService>,
  request: Partial<Omit<ListKeysRequest, "$typeName">>,
): Promise<{ keys: Key[]; pages: number[] }> {
  const keys: Key[] = [];
  const pages: number[] = [];
  let pageToken = "";
  do {
    const page = await client.listKeys({ ...request, pageToken });
    keys.push(...page.keys);
    pages.push(page.keys.length);
    pageToken = page.nextPageToken;
  } while (pageToken && pages.length < 100);
  return { keys, pages };
}

const ids = (keys: readonly Key[]) => keys.map((key) => key.id).sort();

describe("ListKeys", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  describe("paging", () => {
    it("visits every key exactly once with pageSize and nextPageToken, newest first", async () => {
      const root = f.client(f.rootToken);
      const created: string[] = [];
      for (let i = 0; i < 7; i++) {
        const minted = await root.createKey({ kind: "live", tenant: "paged", name: `k${i}` });
        created.push(minted.key?.id ?? "");
      }
      const { keys, pages } = await listAll(root, { tenant: "paged", pageSize: 3 });
      expect(pages).toEqual([3, 3, 1]);
      expect(ids(keys)).toEqual([...created].sort());
      const times = keys.map((key) => timestampMs(key.createdAt ?? timestampFromMs(0)));
      expect(times).toEqual([...times].sort((a, b) => b - a));
    });

    it("pages correctly through keys created in the same millisecond", async () => {
      // Minted straight into the database in one tight loop, so many share a createdAt.
      const created = Array.from(
        { length: 25 },
        () => f.kw.store.create({ kind: "agent", tenant: "burst" }).key.id,
      );
      const { keys, pages } = await listAll(f.client(f.rootToken), {
        tenant: "burst",
        pageSize: 4,
      });
      expect(pages).toEqual([4, 4, 4, 4, 4, 4, 1]);
      expect(ids(keys)).toEqual([...created].sort());
      expect(new Set(ids(keys)).size).toBe(25);
    });

    it("answers one page with no nextPageToken when everything fits", async () => {
      const page = await f.client(f.rootToken).listKeys({ tenant: "paged" });
      expect(page.keys).toHaveLength(7);
      expect(page.nextPageToken).toBe("");
    });
  });

  describe("filters", () => {
    const run1 = { experiment: "e1", variation: "1", run: "r1" };
    const keysOf: Record<string, string> = {};

    beforeAll(async () => {
      const root = f.client(f.rootToken);
      const mint = async (label: string, request: Record<string, unknown>) => {
        const created = await root.createKey({ tenant: "filters", ...request });
        keysOf[label] = created.key?.id ?? "";
      };
      await mint("live", { kind: "live", owner: "ops" });
      await mint("revoked", { kind: "live", owner: "ops" });
      await root.revokeKey({ id: keysOf.revoked ?? "" });
      // The admin API refuses an expiry already past; the row is written as
      // a key whose expiry has since passed would be.
      keysOf.expired = new KeyRepository(db).create({
        kind: "live",
        tenant: "filters",
        expiresAt: Date.now() - 1_000,
      }).key.id;
      await mint("agent", { kind: "agent", owner: "auth0|ada" });
      await mint("worker1", { kind: "worker", binding: run1 });
      await mint("worker1b", { kind: "worker", binding: run1 });
      await mint("worker2", { kind: "worker", binding: { ...run1, run: "r2" } });
      await root.createKey({ kind: "live", tenant: "elsewhere", owner: "ops" });
    });

    const cases: [string, Record<string, string>, string[]][] = [
      ["tenant", {}, ["live", "revoked", "expired", "agent", "worker1", "worker1b", "worker2"]],
      ["kind", { kind: "worker" }, ["worker1", "worker1b", "worker2"]],
      ["status active", { status: "active" }, ["live", "agent", "worker1", "worker1b", "worker2"]],
      ["status revoked", { status: "revoked" }, ["revoked"]],
      ["status expired", { status: "expired" }, ["expired"]],
      ["owner", { owner: "ops" }, ["live", "revoked"]],
      ["run", { run: "r1" }, ["worker1", "worker1b"]],
      ["owner and status together", { owner: "ops", status: "active" }, ["live"]],
    ];
    for (const [name, filter, expected] of cases) {
      it(`filters by ${name}`, async () => {
        const { keys } = await listAll(f.client(f.rootToken), {
          tenant: "filters",
          pageSize: 2,
          ...filter,
        });
        expect(ids(keys)).toEqual(expected.map((label) => keysOf[label]).sort());
      });
    }

    it("reports each key's status as GetKey does", async () => {
      const { keys } = await listAll(f.client(f.rootToken), { tenant: "filters" });
      const status = Object.fromEntries(keys.map((key) => [key.id, key.status]));
      expect(status[keysOf.revoked ?? ""]).toBe("revoked");
      expect(status[keysOf.expired ?? ""]).toBe("expired");
      expect(status[keysOf.live ?? ""]).toBe("active");
    });
  });

  it("lists a tenant admin's tenant, a researcher's own keys and a provisioner's workers", async () => {
    const admin = f.client(await f.adminJwt("team-a"));
    const live = await admin.createKey({});
    const agent = await admin.createKey({ kind: "agent" });
    expect(ids((await admin.listKeys({})).keys)).toEqual(ids([live.key, agent.key] as Key[]));

    const researcher = f.client(await f.researcherJwt("auth0|grace"));
    const user = await researcher.createKey({});
    const own = await researcher.createKey({ kind: "agent" });
    expect(ids((await researcher.listKeys({})).keys)).toEqual(ids([user.key, own.key] as Key[]));

    const provisioner = await f
      .client(f.rootToken)
      .createKey({ kind: "live", tenant: "team-a", scopes: ["keys:provision"] });
    const worker = await f.client(provisioner.secret).createKey({
      kind: "worker",
      binding: { experiment: "e", variation: "v", run: "r" },
    });
    const listed = await f.client(provisioner.secret).listKeys({});
    expect(ids(listed.keys)).toEqual([worker.key?.id]);
  });

  it("never returns a secret in its JSON", async () => {
    const created = await f.client(f.rootToken).createKey({ kind: "live", tenant: "json" });
    const response = await fetch(`${f.adminUrl}/keyward.admin.v1.KeyService/ListKeys`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${f.rootToken}` },
      body: JSON.stringify({ tenant: "json" }),
    });
    const json = await response.text();
    expect(JSON.parse(json)).toMatchObject({ keys: [{ id: created.key?.id }] });
    expect(json).not.toContain(created.secret.slice(-48));
    expect(json).not.toMatch(/[0-9a-f]{48}/);
  });

  it("works over gRPC as well as Connect JSON", async () => {
    const { keys, pages } = await listAll(f.grpcClient(f.rootToken), {
      tenant: "paged",
      pageSize: 5,
    });
    expect(pages).toEqual([5, 2]);
    expect(keys).toHaveLength(7);
  });

  it("audits the listing with its actor", async () => {
    await f.client(await f.adminJwt("audited")).listKeys({});
    expect(audit.list({}, 1)[0]).toMatchObject({
      actor: expect.stringMatching(/^jwt:https:\/\/[^#]+#admin\|audited$/),
      action: "ListKeys",
      outcome: "ok",
    });
  });
});
