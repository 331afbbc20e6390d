import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyward, type ServeProcess, serve } from "../helpers/cli.js";
import { denial, EnvoyCheckClient } from "../helpers/envoy-client.js";

const dir = mkdtempSync(join(tmpdir(), "keyward-cli-"));
const db = join(dir, "keys.db");
const portsEnv = {
  KEYWARD_CHECK_PORT: "0",
  KEYWARD_HTTP_PORT: "0",
  KEYWARD_ADMIN_PORT: "0",
  KEYWARD_DATABASE: db,
};

describe("keyward keys (local database) and serve, as child processes", () => {
  let server: ServeProcess;
  let client: EnvoyCheckClient;

  beforeAll(async () => {
    server = await serve([], portsEnv);
    client = new EnvoyCheckClient(server.ports.check);
  });
  afterAll(async () => {
    client.close();
    await server.stop();
  });

  const check = (secret: string) =>
    client.check({
      method: "GET",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${secret}` },
    });

  it("creates a key → Check allows it → revokes it → Check answers 401 key_revoked", async () => {
    const created = keyward([
      "keys",
      "create",
      "--db",
      db,
      "--kind",
      "live",
      "--name",
      "CI importer",
      "--tenant",
      "acme",
      "--scopes",
      "sources:read,runs:read",
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { key, secret } = JSON.parse(created.stdout) as {
      key: Record<string, unknown>;
      secret: string;
    };
    expect(secret).toMatch(/^sk_live_[0-9a-f]{16}_[0-9a-f]{48}$/);
    expect(key).toMatchObject({
      keyLookup: secret.slice(0, 24),
      kind: "live",
      name: "CI importer",
      tenant: "acme",
      scopes: ["sources:read", "runs:read"],
      status: "active",
      expiresAt: null,
    });
    expect((await check(secret)).status?.code).toBe(0);

    const revoked = keyward(["keys", "revoke", String(key.id), "--db", db, "--json"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout).key.status).toBe("revoked");
    expect(revoked.stdout).not.toContain(secret);
    expect(denial(await check(secret)).body.error).toBe("key_revoked");
  });

  it("denies an expired key with 401 key_expired", async () => {
    const expiresAt = new Date(Date.now() + 3_000).toISOString();
    const created = keyward([
      "keys",
      "create",
      "--db",
      db,
      "--kind",
      "agent",
      "--scopes",
      "sources:read",
      "--expires-at",
      expiresAt,
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { secret, key } = JSON.parse(created.stdout);
    expect(key.expiresAt).toBe(expiresAt);
    // Waits on the condition (the expiry passing), not on a fixed delay.
    while (Date.now() <= Date.parse(expiresAt)) await new Promise((r) => setTimeout(r, 50));
    expect(denial(await check(secret)).body.error).toBe("key_expired");
    const got = JSON.parse(keyward(["keys", "get", key.id, "--db", db, "--json"]).stdout);
    expect(got.key.status).toBe("expired");
  });

  it("rotates a key: same id, the old secret fails, the new one works", async () => {
    const { key, secret } = JSON.parse(
      keyward([
        "keys",
        "create",
        "--db",
        db,
        "--kind",
        "live",
        "--scopes",
        "sources:read",
        "--json",
      ]).stdout,
    );
    const rotated = keyward(["keys", "rotate", key.id, "--db", db, "--json"]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const next = JSON.parse(rotated.stdout);
    expect(next.key.id).toBe(key.id);
    expect(next.secret).not.toBe(secret);
    expect(denial(await check(secret)).body.error).toBe("invalid_token");
    expect((await check(next.secret)).status?.code).toBe(0);
  });

  it("gives user and agent keys a 90-day default lifetime and lists keys as JSON", () => {
    const before = Date.now();
    const { key } = JSON.parse(
      keyward(["keys", "create", "--db", db, "--kind", "user", "--owner", "ada", "--json"]).stdout,
    );
    const lifetime = Date.parse(key.expiresAt) - before;
    expect(lifetime).toBeGreaterThan(89.9 * 86_400_000);
    expect(lifetime).toBeLessThan(90.1 * 86_400_000);
    const got = JSON.parse(keyward(["keys", "get", key.id, "--db", db, "--json"]).stdout);
    expect(got.key).toEqual(key);
    const listed = JSON.parse(
      keyward(["keys", "list", "--db", db, "--owner", "ada", "--json"]).stdout,
    );
    expect(listed.keys).toEqual([key]);
    expect(JSON.stringify(listed)).not.toMatch(/sk_user_[0-9a-f]{16}_/);
  });

  it("mints a worker key bound to a run", () => {
    const out = keyward([
      "keys",
      "create",
      "--db",
      db,
      "--kind",
      "worker",
      "--experiment",
      "e1",
      "--variation",
      "2",
      "--run",
      "3",
      "--json",
    ]);
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout).key.binding).toEqual({
      experiment: "e1",
      variation: "2",
      run: "3",
    });
  });

  it("prints the secret once in human output too", () => {
    const out = keyward(["keys", "create", "--db", db, "--kind", "live"]);
    expect(out.code).toBe(0);
    expect(out.stdout.match(/sk_live_[0-9a-f]{16}_[0-9a-f]{48}/g)).toHaveLength(1);
  });
});

describe("keyward CLI errors", () => {
  it.each([
    [["keys", "create", "--db", db, "--kind", "live", "--bogus"], /unknown option '--bogus'/],
    [
      ["keys", "create", "--db", db, "--kind", "gold"],
      /--kind: expected one of live, user, agent, worker/,
    ],
    [
      ["keys", "create", "--db", db, "--kind", "live", "--ttl", "soon"],
      /--ttl: "soon" is not a duration/,
    ],
    [
      ["keys", "create", "--db", db, "--kind", "live", "--expires-at", "tomorrow"],
      /--expires-at: "tomorrow" is not an ISO 8601 time/,
    ],
    [["keys", "create", "--db", db, "--kind", "worker", "--run", "1"], /all three are required/],
    [["keys", "create", "--db", db, "--kind", "live", "--scopes", "a b"], /invalid scope "a b"/],
    [
      ["keys", "create", "--db", db, "--kind", "live", "--owner", "ada\nx-auth-tenant: globex"],
      /^keyward: --owner: contains a control character \(U\+000A\)$/,
    ],
    [
      ["keys", "create", "--db", db, "--kind", "live", "--tenant", "acme\u2028"],
      /^keyward: --tenant: contains a line or paragraph separator \(U\+2028\)$/,
    ],
    [
      ["keys", "create", "--db", db, "--kind", "live", "--name", "n".repeat(257)],
      /^keyward: --name: is longer than 256 characters$/,
    ],
    [
      ["keys", "create", "--db", db, "--kind", "agent", "--expires-at", "2020-01-01T00:00:00Z"],
      /^keyward: --expires-at: 2020-01-01T00:00:00.000Z is already past/,
    ],
    [
      [
        "keys",
        "create",
        "--db",
        db,
        "--kind",
        "worker",
        "--experiment",
        "e1",
        "--variation",
        "1",
        "--run",
        "1",
        "--scopes",
        "runs:read,keys:provision",
      ],
      /^keyward: --scopes: a worker key cannot hold "keys:provision"/,
    ],
    [["keys", "create", "--db", db], /required option '--kind <kind>' not specified/],
    [["nonsense"], /unknown command 'nonsense'/],
  ])("exits 2 with one line for %j", (args, pattern) => {
    const list = () => keyward(["keys", "list", "--db", db, "--limit", "100000", "--json"]).stdout;
    const creates = args[1] === "create";
    const before = creates ? list() : "";
    const out = keyward(args);
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
    expect(out.stderr.trim()).toMatch(pattern);
    // A refused create mints nothing.
    if (creates) expect(list()).toBe(before);
  });

  it("exits 1 naming the key when it does not exist", () => {
    const out = keyward(["keys", "get", "0000000000000000", "--db", db]);
    expect(out.code).toBe(1);
    expect(out.stderr.trim()).toBe("keyward: key 0000000000000000 not found");
  });

  it("answers --help on every command", () => {
    for (const args of [
      ["--help"],
      ["serve", "--help"],
      ["keys", "--help"],
      ["keys", "create", "--help"],
      ["keys", "list", "--help"],
    ]) {
      const out = keyward(args);
      expect(out.code, args.join(" ")).toBe(0);
      expect(out.stdout).toContain("Usage: keyward");
    }
  });

  it("stops serve on a bad config with one line naming the field and a non-zero exit", () => {
    const config = join(dir, "bad.yaml");
    writeFileSync(config, "listen:\n  check: lots\n");
    const out = keyward(["serve", "--config", config]);
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
    expect(out.stderr).toMatch(/listen\.check: /);
  });

  it("stops serve when the policy file is missing", () => {
    const out = keyward(["serve"], { ...portsEnv, KEYWARD_POLICY: join(dir, "none.yaml") });
    expect(out.code).toBe(2);
    expect(out.stderr.trim()).toMatch(/^keyward: config: policy: file .*none\.yaml does not exist/);
  });
});

describe("keyward serve lifecycle", () => {
  it("drains and exits 0 on SIGTERM", async () => {
    const server = await serve([], { ...portsEnv, KEYWARD_DATABASE: join(dir, "drain.db") });
    expect(await server.stop("SIGTERM")).toBe(0);
    expect(server.stderr()).toContain('"keyward stopped"');
  });
});
