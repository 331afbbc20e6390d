import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, refusal, startAdminFixture } from "../helpers/admin.js";

describe("GetServerInfo tells a caller about itself only", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("refuses a data-plane key with PermissionDenied: it manages no keys", async () => {
    const plain = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    const error = await refusal(f.client(plain.secret).getServerInfo({}));
    expect(error.code).toBe(Code.PermissionDenied);
    expect(error.rawMessage).toBe("the caller may not manage keys");
  });

  it("never echoes the presented credential", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    const response = await fetch(`${f.adminUrl}/keyward.admin.v1.KeyService/GetServerInfo`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${provisioner.secret}`,
      },
      body: "{}",
    });
    const text = await response.text();
    expect(response.status).toBe(200);
    expect(JSON.parse(text).caller).toMatchObject({ provisioner: true, mintableKinds: ["worker"] });
    expect(text).not.toContain(provisioner.secret.slice(-48));
  });

  it("does not offer a researcher scopes it does not hold", async () => {
    const token = await f.researcherJwt("auth0|ada", ["sources:read"]);
    const { caller } = await f.client(token).getServerInfo({});
    expect(caller?.grantableScopes).toEqual(["sources:read"]);
    expect(caller?.managesAll).toBe(false);
  });
});
