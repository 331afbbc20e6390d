import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import { keyward, type ServeProcess, serve } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";

const dir = mkdtempSync(join(tmpdir(), "keyward-cli-server-"));
const db = join(dir, "keys.db");

describe("keyward keys --server (through the admin API) and the first-run story", () => {
  let server: ServeProcess;
  let check: EnvoyCheckClient;
  let token: string;
  let remote: string[];

  beforeAll(async () => {
    // Bootstrap: on a fresh database, mint the first admin key directly.
    const boot = keyward([
      "keys",
      "create",
      "--db",
      db,
      "--kind",
      "live",
      "--name",
      "bootstrap admin",
      "--scopes",
      "keys:admin",
      "--json",
    ]);
    expect(boot.code, boot.stderr).toBe(0);
    token = JSON.parse(boot.stdout).secret;
    server = await serve([], {
      KEYWARD_DATABASE: db,
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    });
    check = new EnvoyCheckClient(server.ports.check);
    remote = ["--server", `http://127.0.0.1:${server.ports.admin}`, "--token", token];
  });
  afterAll(async () => {
    check.close();
    await server.stop();
  });

  it("prints the same JSON as --db mode for create, get, list, rotate and revoke", async () => {
    const created = keyward([
      "keys",
      "create",
      ...remote,
      "--kind",
      "live",
      "--tenant",
      "acme",
      "--name",
      "importer",
      "--scopes",
      "sources:read",
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { key, secret } = JSON.parse(created.stdout);
    expect(secret).toMatch(/^sk_live_[0-9a-f]{16}_[0-9a-f]{48}$/);
    expect(await decide(check, secret)).toBe("allow");

    const viaServer = JSON.parse(keyward(["keys", "get", key.id, ...remote, "--json"]).stdout);
    const viaDb = JSON.parse(keyward(["keys", "get", key.id, "--db", db, "--json"]).stdout);
    expect({ ...viaServer.key, lastUsedAt: null }).toEqual({ ...viaDb.key, lastUsedAt: null });
    expect(Object.keys(viaServer.key)).toEqual(Object.keys(key));

    const listed = JSON.parse(
      keyward(["keys", "list", ...remote, "--tenant", "acme", "--json"]).stdout,
    );
    expect(listed.keys.map((k: { id: string }) => k.id)).toEqual([key.id]);

    const rotated = JSON.parse(keyward(["keys", "rotate", key.id, ...remote, "--json"]).stdout);
    expect(rotated.key.id).toBe(key.id);
    expect(await decide(check, secret)).toBe("invalid_token");
    expect(await decide(check, rotated.secret)).toBe("allow");

    const revoked = JSON.parse(keyward(["keys", "revoke", key.id, ...remote, "--json"]).stdout);
    expect(revoked.key.status).toBe("revoked");
    expect(await decide(check, rotated.secret)).toBe("key_revoked");
  });

  it("suspends and resumes a key through the admin API and on the file, both audited", async () => {
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
    expect(created.code, created.stderr).toBe(0);
    const { key, secret } = JSON.parse(created.stdout);

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
    const created = keyward([
      "keys",
      "create",
      ...remote,
      "--kind",
      "live",
      "--scopes",
      "sources:read",
      "--meta",
      '{"plan":"pro"}',
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { key, secret } = JSON.parse(created.stdout);
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
    const created = keyward([
      "keys",
      "create",
      ...remote,
      "--kind",
      "live",
      "--scopes",
      "sources:read",
      "--rate-limit",
      "1/1h",
      "--cidrs",
      "127.0.0.0/8,::1",
      "--json",
    ]);
    expect(created.code, created.stderr).toBe(0);
    const { key, secret } = JSON.parse(created.stdout);
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

  it("ends a run: revoke-run revokes every worker key of that run", async () => {
    const mint = (run: string) =>
      JSON.parse(
        keyward([
          "keys",
          "create",
          ...remote,
          "--kind",
          "worker",
          "--experiment",
          "e1",
          "--variation",
          "1",
          "--run",
          run,
          "--json",
        ]).stdout,
      );
    const a = mint("7");
    const b = mint("7");
    const other = mint("8");
    const out = keyward([
      "keys",
      "revoke-run",
      ...remote,
      "--experiment",
      "e1",
      "--variation",
      "1",
      "--run",
      "7",
      "--json",
    ]);
    expect(out.code, out.stderr).toBe(0);
    expect(
      JSON.parse(out.stdout)
        .keys.map((k: { id: string }) => k.id)
        .sort(),
    ).toEqual([a.key.id, b.key.id].sort());
    expect(await decide(check, a.secret, "/experiments/e1/variations/1/runs/7")).toBe(
      "key_revoked",
    );
    expect(await decide(check, other.secret, "/experiments/e1/variations/1/runs/8")).toBe("allow");
  });

  it("reports admin API refusals in one line with a non-zero exit", () => {
    const out = keyward([
      "keys",
      "list",
      "--server",
      remote[1] as string,
      "--token",
      "sk_live_nope",
    ]);
    expect(out.code).toBe(1);
    expect(out.stderr.trim()).toBe(
      "keyward: unauthenticated: invalid_token: The credential is not valid.",
    );
    const missing = keyward(["keys", "list", "--server", remote[1] as string], {
      KEYWARD_TOKEN: "",
    });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--token: required/);
  });

  it("refuses a bad flag value with exit 2 and one line, whether the CLI or the server spots it", () => {
    const cases: [string[], RegExp][] = [
      [["--owner", "ada\nx"], /^keyward: --owner: contains a control character \(U\+000A\)$/],
      [["--tenant", "a".repeat(257)], /^keyward: --tenant: is longer than 256 characters$/],
      [["--expires-at", "2020-01-01T00:00:00Z"], /^keyward: --expires-at: .* is already past/],
      // Only the server knows the policy's scopes.
      [
        ["--scopes", "sources:read,sorces:write"],
        /^keyward: invalid_argument: scopes: "sorces:write" is not a scope keyward knows/,
      ],
    ];
    const count = () =>
      JSON.parse(keyward(["keys", "list", ...remote, "--limit", "100000", "--json"]).stdout).keys
        .length;
    const before = count();
    for (const [flags, pattern] of cases) {
      const out = keyward(["keys", "create", ...remote, "--kind", "live", ...flags]);
      expect(out.code, flags.join(" ")).toBe(2);
      expect(out.stderr.trim().split("\n")).toHaveLength(1);
      expect(out.stderr.trim()).toMatch(pattern);
    }
    expect(count()).toBe(before);
  });

  it("keeps an audit trail of every admin action, without secrets", () => {
    const out = keyward(["audit", "list", "--db", db, "--json"]);
    expect(out.code, out.stderr).toBe(0);
    const { entries } = JSON.parse(out.stdout) as { entries: Record<string, unknown>[] };
    const actions = entries.map((e) => `${e.action}:${e.outcome}`);
    for (const expected of [
      "CreateKey:ok",
      "RotateKey:ok",
      "RevokeKey:ok",
      "RevokeRunKeys:ok",
      "ListKeys:ok",
      "GetKey:ok",
    ]) {
      expect(actions).toContain(expected);
    }
    expect(
      entries.some((e) => String(e.actor).startsWith("cli:") && e.action === "CreateKey"),
    ).toBe(true);
    expect(entries.some((e) => e.actor === "anonymous" && e.outcome === "unauthenticated")).toBe(
      true,
    );
    expect(out.stdout).not.toMatch(/sk_[a-z]+_[0-9a-f]{16}_[0-9a-f]{48}/);
    const human = keyward(["audit", "list", "--db", db, "--limit", "3"]);
    expect(human.stdout.trim().split("\n")).toHaveLength(3);
  });
});
