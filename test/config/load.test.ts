import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/errors.js";
import { loadConfig } from "../../src/config/load.js";
import { consoleEnabled } from "../../src/config/schema.js";

const dir = mkdtempSync(join(tmpdir(), "keyward-config-"));
function file(text: string): string {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}
function failure(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected a ConfigError");
}

describe("configuration", () => {
  it("turns the key console on for single and primary, off on a replica, unless told", () => {
    const enabled = (yaml: string) => consoleEnabled(loadConfig({ env: {}, file: file(yaml) }));
    expect(enabled("role: single\n")).toBe(true);
    expect(enabled("role: primary\nreplication: {token: x}\n")).toBe(true);
    expect(enabled("role: replica\nreplication: {primary: 'http://p:9192', token: x}\n")).toBe(
      false,
    );
    expect(
      enabled(
        "role: replica\nreplication: {primary: 'http://p:9192', token: x}\nconsole: {enabled: true}\n",
      ),
    ).toBe(true);
    expect(enabled("console: {enabled: false}\n")).toBe(false);
    expect(failure(() => loadConfig({ env: {}, file: file("console: {enabled: 1}\n") }))).toMatch(
      /console\.enabled/,
    );
  });

  it("defaults to the embedded single-role setup on loopback", () => {
    const config = loadConfig({ env: {} });
    expect(config).toMatchObject({
      role: "single",
      database: "./data/keyward.db",
      listen: { host: "127.0.0.1", check: 9191, admin: 9192, http: 9193 },
      policy: "./deploy/policy.yaml",
      headers: { prefix: "x-auth-", strip_authorization: false },
      issuers: [],
      cache: { max_entries: 100000 },
    });
  });

  it("reads the YAML file and lets KEYWARD_* variables override it", () => {
    const path = file(
      "database: /tmp/a.db\nlisten:\n  check: 7000\n  http: 7001\nheaders:\n  strip_authorization: true\n",
    );
    const config = loadConfig({
      file: path,
      env: { KEYWARD_CHECK_PORT: "0", KEYWARD_DATABASE: "/tmp/b.db", KEYWARD_LOG_LEVEL: "warn" },
    });
    expect(config.database).toBe("/tmp/b.db");
    expect(config.listen).toEqual({ host: "127.0.0.1", check: 0, admin: 9192, http: 7001 });
    expect(config.headers.strip_authorization).toBe(true);
    expect(config.log_level).toBe("warn");
  });

  it.each([
    ["an unknown top-level field", "rol: single\n", /rol: unknown field/],
    ["an unknown nested field", "listen:\n  grpc: 1\n", /listen\.grpc: unknown field/],
    ["a port out of range", "listen:\n  check: 70000\n", /listen\.check: /],
    ["a port that is not a number", "listen:\n  admin: abc\n", /listen\.admin: /],
    ["an unknown role", "role: leader\n", /role: /],
    ["a bad header prefix", "headers:\n  prefix: X Auth\n", /headers\.prefix: /],
    ["YAML that does not parse", "listen: [\n", /config .*yaml: /],
    ["a list at the top level", "- a\n", /top level must be a mapping/],
    ["a replica without a primary", "role: replica\n", /replication\.primary: required/],
    ["no Check worker", "workers: 0\n", /workers: /],
    ["more workers than the bound", "workers: 65\n", /workers: /],
    ["a fractional worker count", "workers: 1.5\n", /workers: /],
    ["a scope with a space", "scopes: [reports:read, 'a b']\n", /scopes\.1: a scope is printable/],
    ["scopes that are not a list", "scopes: reports:read\n", /scopes: /],
    [
      "a replica with several workers",
      "role: replica\nreplication:\n  primary: http://p:9192\n  token: t\nworkers: 2\n",
      /workers: a replica serves Check in one process/,
    ],
  ])("stops with one line naming the field for %s", (_label, text, pattern) => {
    expect(failure(() => loadConfig({ file: file(text), env: {} }))).toMatch(pattern);
  });

  it("reads the known scopes beside the policy's from scopes: (none by default)", () => {
    expect(loadConfig({ env: {} }).scopes).toEqual([]);
    const config = loadConfig({ file: file("scopes: [reports:read]\n"), env: {} });
    expect(config.scopes).toEqual(["reports:read"]);
  });

  it("names the environment variable when a bad value came from it", () => {
    const message = failure(() => loadConfig({ env: { KEYWARD_HTTP_PORT: "http" } }));
    expect(message).toMatch(/KEYWARD_HTTP_PORT → listen\.http: /);
  });

  it("takes the number of Check workers from the file or KEYWARD_WORKERS (default 1)", () => {
    expect(loadConfig({ env: {} }).workers).toBe(1);
    expect(loadConfig({ file: file("workers: 3\n"), env: {} }).workers).toBe(3);
    expect(loadConfig({ file: file("workers: 3\n"), env: { KEYWARD_WORKERS: "2" } }).workers).toBe(
      2,
    );
    expect(failure(() => loadConfig({ env: { KEYWARD_WORKERS: "two" } }))).toMatch(
      /KEYWARD_WORKERS → workers: /,
    );
  });

  it("reports a missing config file", () => {
    expect(failure(() => loadConfig({ file: join(dir, "absent.yaml"), env: {} }))).toMatch(
      /cannot read \(ENOENT\)/,
    );
  });
});
