import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Minted } from "../../src/cli/key-backend.js";
import { decide } from "../helpers/admin.js";
import { bootstrapServer, keyward, type ServeProcess } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";

describe("keyward keys: the key lifecycle on both backends (--server and --db)", () => {
  let server: ServeProcess;
  let check: EnvoyCheckClient;
  let remote: string[];
  let db: string;

  beforeAll(async () => {
    ({ server, remote, db } = await bootstrapServer("keyward-cli-lifecycle-"));
    check = new EnvoyCheckClient(server.ports.check);
  });
  /** `keys create --json` through the admin API; the created key and its secret. */
  const mint = (...flags: string[]) => {
    const created = keyward(["keys", "create", ...remote, ...flags, "--json"]);
    expect(created.code, created.stderr).toBe(0);
    return JSON.parse(created.stdout) as Minted;
  };
  afterAll(async () => {
    check.close();
    await server.stop();
  });

  it("suspends and resumes a key through the admin API and on the file, both audited", async () => {
    const { key, secret } = mint("--kind", "live", "--scopes", "sources:read");

    const suspended = keyward(["keys", "suspend", key.id, ...remote, "--json"]);
    expect(suspended.code, suspended.stderr).toBe(0);
    expect(JSON.parse(suspended.stdout).key.status).toBe("suspended");
    expect(await decide(check, secret)).toBe("key_disabled");
    const listed = keyward(["keys", "list", "--db", db, "--status", "suspended", "--json"]);
    expect(JSON.parse(listed.stdout).keys.map((k: { id: string }) => k.id)).toEqual([key.id]);

    const resumed = keyward(["keys", "resume", key.id, "--db", db]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`^${key.id} .* active `));
    expect(await decide(check, secret)).toBe("allow");

    const trail = keyward(["audit", "list", "--key", key.id, "--db", db, "--json"]);
    const actions = JSON.parse(trail.stdout).entries.map((e: { action: string }) => e.action);
    expect(actions.slice(0, 2)).toEqual(["ResumeKey", "SuspendKey"]);

    keyward(["keys", "revoke", key.id, ...remote]);
    const refused = keyward(["keys", "suspend", key.id, ...remote]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/failed_precondition: key [0-9a-f]{16} is revoked/);
    expect(keyward(["keys", "suspend", "--bogus", key.id, ...remote]).code).toBe(2);
  });

  it("rotates with --grace through both backends: the old secret works until the next rotation", async () => {
    const created = keyward([
      "keys",
      "create",
      ...remote,
      "--kind",
      "live",
      "--scopes",
      "sources:read",
      "--json",
    ]);
    const { key, secret } = JSON.parse(created.stdout);
    const graced = keyward(["keys", "rotate", key.id, ...remote, "--grace", "1h", "--json"]);
    expect(graced.code, graced.stderr).toBe(0);
    const second = JSON.parse(graced.stdout);
    expect(Date.parse(second.key.previousSecretExpiresAt)).toBeGreaterThan(Date.now() + 3_500_000);
    expect(await decide(check, secret)).toBe("allow");
    expect(await decide(check, second.secret)).toBe("allow");

    const onFile = keyward(["keys", "rotate", key.id, "--db", db, "--grace", "10m", "--json"]);
    expect(onFile.code, onFile.stderr).toBe(0);
    const third = JSON.parse(onFile.stdout);
    expect(await decide(check, secret)).toBe("invalid_token");
    expect(await decide(check, second.secret)).toBe("allow");
    expect(await decide(check, third.secret)).toBe("allow");

    const tooLong = keyward(["keys", "rotate", key.id, "--db", db, "--grace", "8d"]);
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toMatch(/--grace: at most 7d/);
    const notADuration = keyward(["keys", "rotate", key.id, ...remote, "--grace", "soon"]);
    expect(notADuration.code).toBe(2);
    expect(notADuration.stderr).toMatch(/--grace: expected a duration/);
    expect(await decide(check, third.secret)).toBe("allow");
  });

  it("sets metadata at create and changes a key with keys update, on both backends", async () => {
    const { key, secret } = mint(
      "--kind",
      "live",
      "--scopes",
      "sources:read",
      "--meta",
      '{"plan":"pro"}',
    );
    expect(key.metadata).toEqual({ plan: "pro" });
    const viaServer = keyward([
      "keys",
      "update",
      key.id,
      ...remote,
      "--scopes",
      "sources:read,sources:write",
      "--meta",
      '{"plan":"team"}',
      "--json",
    ]);
    expect(viaServer.code, viaServer.stderr).toBe(0);
    expect(JSON.parse(viaServer.stdout).key).toMatchObject({
      scopes: ["sources:read", "sources:write"],
      metadata: { plan: "team" },
    });
    expect(await decide(check, secret, "/api/v1/sources", "POST")).toBe("allow");
    const onFile = keyward([
      "keys",
      "update",
      key.id,
      "--db",
      db,
      "--name",
      "renamed",
      "--meta",
      "{}",
      "--json",
    ]);
    expect(onFile.code, onFile.stderr).toBe(0);
    expect(JSON.parse(onFile.stdout).key).toMatchObject({ name: "renamed", metadata: null });
    for (const flags of [["--meta", "{not json"], ["--meta", "[1]"], []]) {
      const bad = keyward(["keys", "update", key.id, ...remote, ...flags]);
      expect(bad.code, flags.join(" ")).toBe(2);
      expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  it("sets, changes and removes a rate limit with --rate-limit on both backends", async () => {
    const { key, secret } = mint(
      "--kind",
      "live",
      "--scopes",
      "sources:read",
      "--rate-limit",
      "1/1h",
      "--cidrs",
      "127.0.0.0/8,::1",
    );
    expect(key.rateLimit).toEqual({ requests: 1, perSeconds: 3600, burst: 0 });
    expect(key.allowedCidrs).toEqual(["127.0.0.0/8", "::1"]);
    const raised = keyward([
      "keys",
      "update",
      key.id,
      "--db",
      db,
      "--rate-limit",
      "6000/1m:200",
      "--json",
    ]);
    expect(raised.code, raised.stderr).toBe(0);
    expect(JSON.parse(raised.stdout).key.rateLimit).toEqual({
      requests: 6000,
      perSeconds: 60,
      burst: 200,
    });
    const removed = keyward([
      "keys",
      "update",
      key.id,
      ...remote,
      "--rate-limit",
      "none",
      "--json",
    ]);
    expect(JSON.parse(removed.stdout).key.rateLimit).toBeNull();
    expect(secret).toMatch(/^sk_live_/);
    const bad = keyward(["keys", "update", key.id, ...remote, "--rate-limit", "fast"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--rate-limit: "fast" is not REQUESTS\/WINDOW/);
  });
});
