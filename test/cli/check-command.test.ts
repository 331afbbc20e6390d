import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyward, type ServeProcess, serve } from "../helpers/cli.js";

// `keyward check` and the `keys` commands' database, as a user types them:
// real child processes against a real `keyward serve`.

const dir = mkdtempSync(join(tmpdir(), "keyward-check-cli-"));
const db = join(dir, "keys.db");

describe("keyward check", () => {
  let server: ServeProcess;
  let address: string;
  let secret: string;

  beforeAll(async () => {
    const made = keyward(
      ["keys", "create", "--db", db, "--kind", "live", "--scopes", "sources:read", "--json"],
      {},
    );
    expect(made.code, made.stderr).toBe(0);
    secret = JSON.parse(made.stdout).secret;
    server = await serve([], {
      KEYWARD_DATABASE: db,
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    });
    address = `127.0.0.1:${server.ports.check}`;
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("exits 0 on an allow and prints the identity headers", () => {
    const out = keyward([
      "check",
      "--server",
      address,
      "--token",
      secret,
      "--path",
      "/api/v1/sources",
    ]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/^allow\n/);
    expect(out.stdout).toContain("x-auth-kind: live");
  });

  it("exits 3 on a deny, after printing it (JSON too)", () => {
    const human = keyward([
      "check",
      "--server",
      address,
      "--token",
      secret,
      "--method",
      "POST",
      "--path",
      "/api/v1/sources",
    ]);
    expect(human.code).toBe(3);
    expect(human.stdout).toMatch(/^deny 403 .*insufficient_scope/);
    const json = keyward(["check", "--server", address, "--path", "/api/v1/sources", "--json"]);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout).deniedResponse.status.code).toBe("Unauthorized");
  });

  it("presents only the token given with --token, never KEYWARD_TOKEN", () => {
    const out = keyward(["check", "--server", address, "--path", "/api/v1/sources"], {
      KEYWARD_TOKEN: secret,
    });
    expect(out.code).toBe(3);
    expect(out.stdout).toMatch(/^deny 401 .*missing_credential/);
  });

  it("exits 1 when nothing answers at --server", () => {
    const out = keyward(["check", "--server", "127.0.0.1:1", "--path", "/"]);
    expect(out.code).toBe(1);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("the keys commands' database", () => {
  it("is found as the server finds it: KEYWARD_DATABASE, else --config's database:, else ./data", () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "keyward-cwd-"));
    const file = join(elsewhere, "served.db");
    const config = join(elsewhere, "keyward.yaml");
    writeFileSync(config, `database: ${file}\npolicy: null\n`);
    const made = keyward(
      ["keys", "create", "--config", config, "--kind", "live", "--json"],
      {},
      elsewhere,
    );
    expect(made.code, made.stderr).toBe(0);
    const id = JSON.parse(made.stdout).key.id;
    // The same file through the environment, from another directory.
    const viaEnv = keyward(["keys", "get", id, "--json"], { KEYWARD_CONFIG: config }, tmpdir());
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(JSON.parse(viaEnv.stdout).key.id).toBe(id);
    const viaDatabase = keyward(["keys", "get", id], { KEYWARD_DATABASE: file }, tmpdir());
    expect(viaDatabase.code, viaDatabase.stderr).toBe(0);
  });

  it("refuses to read a database that is not there instead of creating an empty one", () => {
    const empty = mkdtempSync(join(tmpdir(), "keyward-nodb-"));
    mkdirSync(join(empty, "data"));
    for (const args of [
      ["keys", "list"],
      ["keys", "get", "0123456789abcdef"],
      ["audit", "list"],
    ]) {
      const out = keyward(args, {}, empty);
      expect(out.code, args.join(" ")).toBe(2);
      expect(out.stderr).toMatch(/^keyward: --db: no key database at \.\/data\/keyward\.db/);
    }
  });
});
