import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, rest, startAdminFixture } from "../helpers/admin.js";

// POST /api-keys is the Chronicle endpoint (seed 000): it mints researchers'
// user keys and agents' or developers' agent keys, never a Developer API
// live key, whoever calls it.
describe("POST /api-keys mints user and agent keys only", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => f.close());

  const post = (token: string, body: Record<string, unknown>) =>
    rest(f, "POST", "/api-keys", { token, body, contentType: null });

  it("mints an agent key, not a live key, for a tenant admin and for keys:admin", async () => {
    for (const [token, tenant, owner] of [
      [await f.adminJwt("acme"), "acme", "admin|acme"],
      // keys:admin names an owner or none; without one, the key's id is its subject.
      [f.rootToken, "", ""],
    ] as const) {
      const answer = await post(token, { description: "my custom runner", scopes: ["runs:read"] });
      expect(answer.status).toBe(201);
      expect(answer.body.key).toMatchObject({
        kind: "agent",
        tenant,
        owner,
        name: "my custom runner",
      });
      expect(answer.body.secret).toMatch(/^sk_agent_[0-9a-f]{16}_[0-9a-f]{48}$/);
    }
  });

  it("mints a user key for a researcher, or an agent key when the body asks for one", async () => {
    const token = await f.researcherJwt("auth0|ada", ["runs:read"]);
    const user = await post(token, { description: "laptop", scopes: ["runs:read"] });
    expect(user.body.key).toMatchObject({ kind: "user", owner: "auth0|ada" });
    const agent = await post(token, { description: "runner", kind: "agent" });
    expect(agent.body.key).toMatchObject({ kind: "agent", owner: "auth0|ada" });
    expect(
      await decide(f.check, agent.body.secret as string, "/experiments/e/variations/1/runs/2"),
    ).toBe("allow");
  });

  it("refuses any other kind with 400 naming the field, for every caller", async () => {
    const callers = [f.rootToken, await f.adminJwt("acme"), await f.researcherJwt("auth0|ada")];
    const liveKeys = async () =>
      (await f.client(f.rootToken).listKeys({ kind: "live", pageSize: 1000 })).keys.length;
    const before = await liveKeys();
    for (const token of callers) {
      for (const kind of ["live", "worker", "admin", ""]) {
        const answer = await post(token, { description: "x", kind });
        expect([answer.status, answer.body.error], kind).toEqual([400, "invalid_argument"]);
        expect(answer.body.message).toMatch(/^kind: /);
      }
    }
    expect(await liveKeys()).toBe(before);
  });

  it("refuses a caller that may mint neither kind with 403", async () => {
    const provisioner = await f.client(f.rootToken).createKey({
      kind: "live",
      tenant: "acme",
      scopes: ["keys:provision"],
    });
    const answer = await post(provisioner.secret, { description: "x" });
    expect([answer.status, answer.body.error]).toEqual([403, "permission_denied"]);
  });
});
