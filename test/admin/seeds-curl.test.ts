import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, startAdminFixture } from "../helpers/admin.js";

const run = promisify(execFile);

// The seeds' admin commands, run with the real curl binary exactly as the
// documents print them (only the host and the tokens are substituted).
async function curl(args: string[]): Promise<{ status: number; body: Record<string, unknown> }> {
  const { stdout } = await run("curl", ["-sS", "-w", "\n%{http_code}", ...args]);
  const lines = stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join("\n")) as Record<string, unknown> };
}

describe("the seeds' curl commands against a real admin port", () => {
  let f: AdminFixture;
  let CHATBOT_API: string;
  let ADMIN_JWT: string;
  const SECRET = /^sk_live_[0-9a-f]{16}_[0-9a-f]{48}$/;

  beforeAll(async () => {
    f = await startAdminFixture();
    CHATBOT_API = f.adminUrl;
    ADMIN_JWT = await f.adminJwt("acme");
  });
  afterAll(async () => f.close());

  it("creates a Developer API key (Authentication & key rotation: Creating a key)", async () => {
    const { status, body } = await curl([
      "-X",
      "POST",
      `${CHATBOT_API}/v1/admin/keys`,
      "-H",
      `Authorization: Bearer ${ADMIN_JWT}`,
      "-H",
      "Content-Type: application/json",
      "-d",
      '{"name":"CI importer","scopes":["sources:write","items:write","runs:execute","runs:apply","runs:read"]}',
    ]);
    expect(status).toBe(201);
    expect(Object.keys(body).sort()).toEqual(["key", "secret"]);
    const key = body.key as Record<string, unknown>;
    expect(key).toMatchObject({
      keyLookup: expect.stringMatching(/^sk_live_[0-9a-f]{16}$/),
      scopes: ["sources:write", "items:write", "runs:execute", "runs:apply", "runs:read"],
      status: "active",
      name: "CI importer",
      tenant: "acme",
    });
    expect(body.secret).toMatch(SECRET);
    expect((body.secret as string).startsWith(`${key.keyLookup}_`)).toBe(true);
    expect(await decide(f.check, body.secret as string, "/api/v1/sources/s1/runs", "POST")).toBe(
      "allow",
    );
  });

  // The seed's own example date (2025-01-01) has passed: a key born expired
  // is refused with 400 naming expiresAt, and a future date auto-expires.
  it("auto-expires a key created with an expiresAt, and refuses one already past", async () => {
    const create = (expiresAt: string) =>
      curl([
        "-X",
        "POST",
        `${CHATBOT_API}/v1/admin/keys`,
        "-H",
        `Authorization: Bearer ${ADMIN_JWT}`,
        "-H",
        "Content-Type: application/json",
        "-d",
        `{"name":"old importer","scopes":["sources:read"],"expiresAt":"${expiresAt}"}`,
      ]);
    const past = await create("2025-01-01T00:00:00Z");
    expect([past.status, past.body.error]).toEqual([400, "invalid_argument"]);
    expect(past.body.message).toMatch(/^expiresAt: 2025-01-01T00:00:00.000Z is already past/);

    const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2_000);
    const { status, body } = await create(at.toISOString().replace(".000Z", "Z"));
    expect(status).toBe(201);
    expect((body.key as Record<string, unknown>).expiresAt).toBe(at.toISOString());
    expect(await decide(f.check, body.secret as string)).toBe("allow");
    // Waits on the condition (the expiry passing), not on a fixed delay.
    while (Date.now() <= at.getTime()) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await decide(f.check, body.secret as string)).toBe("key_expired");
  });

  it("rotates in place: a new secret, and the old one fails at once (Rotation)", async () => {
    const created = await f.client(ADMIN_JWT).createKey({ scopes: ["sources:read"] });
    const KEY_ID = created.key?.id as string;
    const { status, body } = await curl([
      "-X",
      "POST",
      `${CHATBOT_API}/v1/admin/keys/${KEY_ID}/rotate`,
      "-H",
      `Authorization: Bearer ${ADMIN_JWT}`,
    ]);
    expect(status).toBe(200);
    expect((body.key as Record<string, unknown>).id).toBe(KEY_ID);
    expect(body.secret).toMatch(SECRET);
    expect(body.secret).not.toBe(created.secret);
    expect(await decide(f.check, created.secret)).toBe("invalid_token");
    expect(await decide(f.check, body.secret as string)).toBe("allow");
  });

  it("revokes: every later request answers 401 key_revoked (Revocation)", async () => {
    const created = await f.client(ADMIN_JWT).createKey({ scopes: ["sources:read"] });
    const KEY_ID = created.key?.id as string;
    const { status, body } = await curl([
      "-X",
      "DELETE",
      `${CHATBOT_API}/v1/admin/keys/${KEY_ID}`,
      "-H",
      `Authorization: Bearer ${ADMIN_JWT}`,
    ]);
    expect(status).toBe(200);
    expect((body.key as Record<string, unknown>).status).toBe("revoked");
    expect(JSON.stringify(body)).not.toContain(created.secret);
    for (let i = 0; i < 3; i++) expect(await decide(f.check, created.secret)).toBe("key_revoked");
  });

  it("lists the tenant's keys under both prefixes, without secrets", async () => {
    for (const prefix of ["/v1/admin/keys", "/api/v1/admin/keys"]) {
      const { status, body } = await curl([
        `${CHATBOT_API}${prefix}`,
        "-H",
        `Authorization: Bearer ${ADMIN_JWT}`,
      ]);
      expect(status).toBe(200);
      const keys = body.keys as Record<string, unknown>[];
      expect(keys.length).toBeGreaterThanOrEqual(4);
      expect(keys.every((k) => k.tenant === "acme")).toBe(true);
      expect(JSON.stringify(body)).not.toMatch(/sk_live_[0-9a-f]{16}_[0-9a-f]{48}/);
    }
  });

  it("mints a researcher key with an Auth0 token and revokes it (Chronicle: Self-managed runners, Revocation)", async () => {
    const AUTH0_TOKEN = await f.researcherJwt("auth0|ada", ["runs:read", "runs:execute"]);
    const { status, body } = await curl([
      "-X",
      "POST",
      `${CHATBOT_API}/api-keys`,
      "-H",
      `Authorization: Bearer ${AUTH0_TOKEN}`,
      "-d",
      '{"description": "my custom runner", "scopes": ["runs:read"]}',
    ]);
    expect(status).toBe(201);
    const key = body.key as Record<string, unknown>;
    expect(key).toMatchObject({
      kind: "user",
      name: "my custom runner",
      owner: "auth0|ada",
      scopes: ["runs:read"],
    });
    expect(body.secret).toMatch(/^sk_user_[0-9a-f]{16}_[0-9a-f]{48}$/);
    const lifetime = Date.parse(key.expiresAt as string) - Date.now();
    expect(Math.round(lifetime / 86_400_000)).toBe(90);
    expect(await decide(f.check, body.secret as string, "/experiments/e/variations/1/runs/2")).toBe(
      "allow",
    );

    const revoked = await curl([
      "-X",
      "DELETE",
      `${CHATBOT_API}/api-keys/${key.id}`,
      "-H",
      `Authorization: Bearer ${AUTH0_TOKEN}`,
    ]);
    expect(revoked.status).toBe(200);
    expect(await decide(f.check, body.secret as string, "/experiments/e/variations/1/runs/2")).toBe(
      "key_revoked",
    );
  });

  it("answers errors as JSON with a code and the right status", async () => {
    // A POST of `body` to the seed's create route as the tenant admin.
    const post = (body: string, contentType = "application/json") => [
      "-X",
      "POST",
      `${CHATBOT_API}/v1/admin/keys`,
      "-H",
      `Authorization: Bearer ${ADMIN_JWT}`,
      "-H",
      `Content-Type: ${contentType}`,
      "-d",
      body,
    ];
    const cases: [string[], number, string][] = [
      [["-X", "POST", `${CHATBOT_API}/v1/admin/keys`, "-d", "{}"], 401, "unauthenticated"],
      [post("{not json"), 400, "invalid_argument"],
      [post('{"nme":"typo"}'), 400, "invalid_argument"],
      [post('{"scopes":["keys:admin"]}'), 403, "permission_denied"],
      [post('{"scopes":["sources:reed"]}'), 400, "invalid_argument"],
      [post('{"name":"x"}', "text/plain"), 415, "unsupported_media_type"],
      [
        [
          "-X",
          "DELETE",
          `${CHATBOT_API}/v1/admin/keys/0123456789abcdef`,
          "-H",
          `Authorization: Bearer ${ADMIN_JWT}`,
        ],
        404,
        "not_found",
      ],
      [post(`{"name":"${"x".repeat(70_000)}"}`), 413, "payload_too_large"],
    ];
    for (const [args, status, code] of cases) {
      const answer = await curl(args);
      expect([answer.status, answer.body.error], args.join(" ").slice(0, 120)).toEqual([
        status,
        code,
      ]);
      expect(typeof answer.body.message).toBe("string");
    }
  });
});
