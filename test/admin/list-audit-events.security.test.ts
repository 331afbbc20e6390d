import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, keyOf, refusal, startAdminFixture } from "../helpers/admin.js";
import { nowSeconds } from "../helpers/jwks.js";

describe("ListAuditEvents shows a trail only to those who may read the key", () => {
  let f: AdminFixture;
  let acmeId: string;

  beforeAll(async () => {
    f = await startAdminFixture();
    acmeId = keyOf(await f.client(await f.adminJwt("acme")).createKey({ kind: "live" })).id;
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses a missing token and an expired JWT with Unauthenticated", async () => {
    const expired = await f.adminJwt("acme", undefined, { exp: nowSeconds() - 60 });
    for (const [token, message] of [
      [undefined, /missing_credential/],
      [expired, /token_expired/],
    ] as const) {
      const error = await refusal(f.client(token).listAuditEvents({ keyId: acmeId }));
      expect(error.code).toBe(Code.Unauthenticated);
      expect(error.rawMessage).toMatch(message);
    }
  });

  it("answers another tenant's key with the very NotFound an unknown id gets", async () => {
    const globex = f.client(await f.adminJwt("globex"));
    const foreign = await refusal(globex.listAuditEvents({ keyId: acmeId }));
    const unknown = await refusal(globex.listAuditEvents({ keyId: "0123456789abcdef" }));
    expect(foreign.code).toBe(Code.NotFound);
    expect(foreign.rawMessage.replace(acmeId, "<id>")).toBe(
      unknown.rawMessage.replace("0123456789abcdef", "<id>"),
    );
  });

  it("does not show a researcher the trail of another researcher's key", async () => {
    const ada = await f.client(await f.researcherJwt("auth0|ada")).createKey({});
    const mallory = f.client(await f.researcherJwt("auth0|mallory"));
    const error = await refusal(mallory.listAuditEvents({ keyId: keyOf(ada).id }));
    expect(error.code).toBe(Code.NotFound);
  });

  it("refuses a data-plane key with PermissionDenied", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    const error = await refusal(f.client(plain.secret).listAuditEvents({ keyId: acmeId }));
    expect(error.code).toBe(Code.PermissionDenied);
  });

  it("hides refused calls by others from a tenant admin; keys:admin sees them", async () => {
    const id = keyOf(await f.client(await f.adminJwt("acme")).createKey({ kind: "live" })).id;
    // Another tenant names the id: refused (not found), and recorded under that id.
    await refusal(f.client(await f.adminJwt("globex")).revokeKey({ id }));

    const acme = await f.client(await f.adminJwt("acme")).listAuditEvents({ keyId: id });
    expect(acme.events.map((event) => event.action)).toEqual(["CreateKey"]);
    expect(acme.events.map((event) => event.actor).join(" ")).not.toContain("globex");

    const root = await f.client(f.rootToken).listAuditEvents({ keyId: id });
    expect(root.events.map((event) => [event.action, event.outcome])).toEqual([
      ["RevokeKey", "NotFound"],
      ["CreateKey", "ok"],
    ]);
    expect(root.events[0]?.actor).toMatch(/#admin\|globex$/);
  });
});
