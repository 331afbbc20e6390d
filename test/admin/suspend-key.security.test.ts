import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdminFixture,
  decide,
  keyOf,
  refusal,
  rest,
  startAdminFixture,
} from "../helpers/admin.js";

describe("SuspendKey and ResumeKey only act on keys the caller manages", () => {
  let f: AdminFixture;
  /** A key of tenant acme, and its secret. */
  let acme: { id: string; secret: string };

  beforeAll(async () => {
    f = await startAdminFixture();
    const created = await f
      .client(await f.adminJwt("acme"))
      .createKey({ kind: "live", scopes: ["sources:read"] });
    acme = { id: keyOf(created).id, secret: created.secret };
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses a missing credential, and answers another tenant's key exactly like a missing one", async () => {
    expect((await refusal(f.client().suspendKey({ id: acme.id }))).code).toBe(Code.Unauthenticated);
    const globex = f.client(await f.adminJwt("globex"));
    for (const call of [globex.suspendKey({ id: acme.id }), globex.resumeKey({ id: acme.id })]) {
      const error = await refusal(call);
      expect(error.code).toBe(Code.NotFound);
      expect(error.rawMessage).toBe(`key ${acme.id} not found`);
    }
    expect(
      (
        await rest(f, "POST", `/v1/admin/keys/${acme.id}/suspend`, {
          token: await f.adminJwt("globex"),
        })
      ).status,
    ).toBe(404);
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("does not let another tenant resume a key its own admin suspended", async () => {
    const acmeAdmin = f.client(await f.adminJwt("acme"));
    await acmeAdmin.suspendKey({ id: acme.id });
    const globex = f.client(await f.adminJwt("globex"));
    expect((await refusal(globex.resumeKey({ id: acme.id }))).code).toBe(Code.NotFound);
    expect(await decide(f.check, acme.secret)).toBe("key_disabled");
    await acmeAdmin.resumeKey({ id: acme.id });
    expect(await decide(f.check, acme.secret)).toBe("allow");
  });

  it("does not let a researcher suspend or resume another researcher's key", async () => {
    const ada = await f
      .client(await f.researcherJwt("auth0|ada"))
      .createKey({ scopes: ["sources:read"] });
    const mallory = f.client(await f.researcherJwt("auth0|mallory"));
    expect((await refusal(mallory.suspendKey({ id: keyOf(ada).id }))).code).toBe(Code.NotFound);
    expect(await decide(f.check, ada.secret)).toBe("allow");
  });

  // Resuming hands a key's scopes back: only a caller that could mint them may.
  it("does not let a tenant admin resume a key with a scope its token does not carry", async () => {
    const root = f.client(f.rootToken);
    const wide = await root.createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read", "runs:apply"],
    });
    await root.suspendKey({ id: keyOf(wide).id });
    const narrow = f.client(await f.adminJwt("acme", ["sources:read"]));
    const error = await refusal(narrow.resumeKey({ id: keyOf(wide).id }));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toMatch(/"runs:apply"/);
    expect(await decide(f.check, wide.secret)).toBe("key_disabled");
  });

  it("never allows a suspended key, on any route, however often it is presented", async () => {
    const root = f.client(f.rootToken);
    const created = await root.createKey({ kind: "live", scopes: ["sources:read", "keys:admin"] });
    await root.suspendKey({ id: keyOf(created).id });
    const paths = ["/api/v1/sources", "/api/v1/sources/s1", "/nothing"];
    for (let round = 0; round < 20; round++) {
      expect(await decide(f.check, created.secret, paths[round % paths.length])).toBe(
        "key_disabled",
      );
    }
    // Nor as an admin credential: a suspended keys:admin key manages nothing.
    const error = await refusal(f.client(created.secret).listKeys({}));
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toMatch(/key_disabled/);
  });
});
