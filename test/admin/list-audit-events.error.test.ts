import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, keyOf, refusal, startAdminFixture } from "../helpers/admin.js";

describe("ListAuditEvents refuses bad requests with a readable reason", () => {
  let f: AdminFixture;
  let id: string;

  beforeAll(async () => {
    f = await startAdminFixture();
    id = keyOf(await f.client(f.rootToken).createKey({ kind: "live", tenant: "acme" })).id;
  });
  afterAll(async () => {
    await f.close();
  });

  it("asks for key_id when it is missing", async () => {
    const error = await refusal(f.client(f.rootToken).listAuditEvents({}));
    expect(error.code).toBe(Code.InvalidArgument);
    expect(error.rawMessage).toBe("key_id is required");
  });

  it("answers an unknown id with NotFound, and a malformed one without echoing it", async () => {
    const unknown = await refusal(
      f.client(f.rootToken).listAuditEvents({ keyId: "0123456789abcdef" }),
    );
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toBe("key 0123456789abcdef not found");
    const pasted = `sk_live_0123456789abcdef_${"a".repeat(48)}`;
    const malformed = await refusal(f.client(f.rootToken).listAuditEvents({ keyId: pasted }));
    expect(malformed.code).toBe(Code.NotFound);
    expect(malformed.rawMessage).not.toContain("a".repeat(48));
  });

  it("refuses a page token it did not issue", async () => {
    for (const pageToken of ["nonsense", Buffer.from("[-1]").toString("base64url")]) {
      const error = await refusal(f.client(f.rootToken).listAuditEvents({ keyId: id, pageToken }));
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/page_token/);
    }
  });

  it("caps the page size at 500", async () => {
    const root = f.client(f.rootToken);
    const { events } = await root.listAuditEvents({ keyId: id, pageSize: 100_000 });
    expect(events.length).toBeGreaterThan(0);
    expect(events.length).toBeLessThanOrEqual(500);
  });
});
