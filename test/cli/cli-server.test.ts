import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import { bootstrapServer, keyward, type ServeProcess } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";

describe("keyward keys --server (through the admin API) and the first-run story", () => {
  let server: ServeProcess;
  let check: EnvoyCheckClient;
  let remote: string[];
  let db: string;

  beforeAll(async () => {
    ({ server, remote, db } = await bootstrapServer("keyward-cli-server-"));
    check = new EnvoyCheckClient(server.ports.check);
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
