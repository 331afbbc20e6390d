import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, DATA_SCOPES, startAdminFixture } from "../helpers/admin.js";

const KNOWN = [...DATA_SCOPES, "keys:admin", "keys:provision"].sort();

describe("GetServerInfo", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  it("names the role and the known scopes: the policy's, keys:admin and keys:provision", async () => {
    const info = await f.client(f.rootToken).getServerInfo({});
    expect(info.role).toBe("single");
    expect(info.knownScopes).toEqual(KNOWN);
  });

  it("tells keys:admin it manages everything and may grant every known scope", async () => {
    const { caller } = await f.client(f.rootToken).getServerInfo({});
    expect(caller).toMatchObject({
      actor: expect.stringMatching(/^key:[0-9a-f]{16}$/),
      credentialKind: "live",
      managesAll: true,
      mintableKinds: ["live", "user", "agent", "worker"],
      grantableScopes: KNOWN,
    });
  });

  it("tells a tenant admin its tenant, its kinds and the known scopes it holds", async () => {
    const token = await f.adminJwt("acme", ["sources:read", "items:write", "reports:custom"]);
    const { caller } = await f.client(token).getServerInfo({});
    expect(caller).toMatchObject({
      subject: "admin|acme",
      tenant: "acme",
      credentialKind: "jwt",
      managesAll: false,
      tenantAdmin: true,
      researcher: false,
      mintableKinds: ["live", "agent"],
      // reports:custom is held but no known scope: it cannot go on a key.
      grantableScopes: ["items:write", "sources:read"],
    });
  });

  it("tells a researcher it mints user and agent keys with its own scopes", async () => {
    const token = await f.researcherJwt("auth0|ada", ["runs:read"]);
    const { caller } = await f.client(token).getServerInfo({});
    expect(caller).toMatchObject({
      subject: "auth0|ada",
      researcher: true,
      tenantAdmin: false,
      mintableKinds: ["user", "agent"],
      grantableScopes: ["runs:read"],
    });
  });
});

describe("GetServerInfo after a policy reload", () => {
  let f: AdminFixture;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-policy-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(policy, "rules:\n  - {method: GET, path: /a, scopes: [a:read]}\n");
    f = await startAdminFixture({ policy });
  });
  afterAll(async () => {
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("shows the scopes of the policy in force", async () => {
    const root = f.client(f.rootToken);
    expect((await root.getServerInfo({})).knownScopes).toEqual([
      "a:read",
      "keys:admin",
      "keys:provision",
    ]);
    writeFileSync(
      join(dir, "policy.yaml"),
      "rules:\n  - {method: GET, path: /a, scopes: [a:read]}\n  - {method: POST, path: /b, scopes: [b:write]}\n",
    );
    expect(await f.kw.keyward.reload()).toBe(true);
    expect((await root.getServerInfo({})).knownScopes).toEqual([
      "a:read",
      "b:write",
      "keys:admin",
      "keys:provision",
    ]);
  });
});
