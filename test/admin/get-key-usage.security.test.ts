import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, refusal, startAdminFixture } from "../helpers/admin.js";

describe("GetKeyUsage shows a key's use only to those who may GetKey it", () => {
  let f: AdminFixture;
  let acmeId: string;

  beforeAll(async () => {
    f = await startAdminFixture();
    const created = await f.client(await f.adminJwt("acme")).createKey({ kind: "live" });
    acmeId = created.key?.id ?? "";
    await decide(f.check, created.secret);
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses a missing token with Unauthenticated", async () => {
    const error = await refusal(f.client().getKeyUsage({ id: acmeId }));
    expect(error.code).toBe(Code.Unauthenticated);
  });

  it("answers another tenant's key, and another researcher's, with the NotFound an unknown id gets", async () => {
    const globex = f.client(await f.adminJwt("globex"));
    expect((await refusal(globex.getKeyUsage({ id: acmeId }))).code).toBe(Code.NotFound);
    expect((await refusal(globex.getKeyUsage({ id: "0123456789abcdef" }))).code).toBe(
      Code.NotFound,
    );
    const mallory = f.client(await f.researcherJwt("auth0|mallory"));
    expect((await refusal(mallory.getKeyUsage({ id: acmeId }))).code).toBe(Code.NotFound);
    // Over REST too: the same rule, the same 404.
    const answer = await fetch(`${f.adminUrl}/v1/admin/keys/${acmeId}/usage`, {
      headers: { authorization: `Bearer ${await f.adminJwt("globex")}` },
    });
    expect(answer.status).toBe(404);
  });

  it("shows the key's own tenant admin its use, and refuses an hours value out of range", async () => {
    const acme = f.client(await f.adminJwt("acme"));
    const answer = await acme.getKeyUsage({ id: acmeId, hours: 24 });
    expect(Array.isArray(answer.usage)).toBe(true);
    expect((await refusal(acme.getKeyUsage({ id: acmeId, hours: 100_000 }))).code).toBe(
      Code.InvalidArgument,
    );
  });
});
