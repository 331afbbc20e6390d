import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog } from "../../src/keys/audit.js";
import { type Db, openDatabase } from "../../src/keys/db.js";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";

const token = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("ListKeys refuses malformed requests", () => {
  let f: AdminFixture;
  let db: Db;
  let audit: AuditLog;

  beforeAll(async () => {
    f = await startAdminFixture();
    db = openDatabase(f.kw.database);
    audit = new AuditLog(db);
    for (let i = 0; i < 3; i++) await f.client(f.rootToken).createKey({ kind: "live" });
  });
  afterAll(async () => {
    db.close();
    await f.close();
  });

  const badTokens: [string, string][] = [
    ["random text", "not-a-token"],
    ["base64 of something else", Buffer.from("hello").toString("base64url")],
    ["a cursor with an id that is not 16 hex", token([Date.now(), "x' OR 1=1 --"])],
    ["a cursor with a time that is not a number", token(["yesterday", "0123456789abcdef"])],
    ["a cursor that is an object", token({ createdAt: 1, id: "0123456789abcdef" })],
  ];
  for (const [name, pageToken] of badTokens) {
    it(`answers InvalidArgument for a page token that is ${name}`, async () => {
      const error = await refusal(f.client(f.rootToken).listKeys({ pageToken }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/page_token is not one this server issued/);
    });
  }

  it("answers InvalidArgument, naming the allowed values, for an unknown status", async () => {
    for (const status of ["deleted", "ACTIVE", "active "]) {
      const error = await refusal(f.client(f.rootToken).listKeys({ status }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/status must be one of active, suspended, revoked, expired/);
    }
  });

  it("answers InvalidArgument, naming the allowed values, for an unknown kind", async () => {
    const error = await refusal(f.client(f.rootToken).listKeys({ kind: "jwt" }));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toMatch(/kind must be one of live, user, agent, worker/);
  });

  it("still accepts the token it issued after the refusals", async () => {
    const first = await f.client(f.rootToken).listKeys({ pageSize: 2 });
    const next = await f
      .client(f.rootToken)
      .listKeys({ pageSize: 2, pageToken: first.nextPageToken });
    expect(first.keys).toHaveLength(2);
    expect(next.keys.length).toBeGreaterThan(0);
  });

  it("audits refused listings with their outcome", async () => {
    const refused = audit
      .list({}, 10_000)
      .filter((row) => row.action === "ListKeys" && row.outcome === "InvalidArgument");
    expect(refused).toHaveLength(badTokens.length + 4);
  });
});
