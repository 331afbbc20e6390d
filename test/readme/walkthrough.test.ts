import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, type ServeProcess, serve } from "../helpers/cli.js";

// README's newcomer path, pasted as a new user would: "Five-minute
// walkthrough" and "First run" run verbatim in bash against `keyward serve`
// on its embedded defaults (the ports and ./data/keyward.db of `npm start`).
// Two things stand in for the user's shell, and nothing else: the working
// directory is a fresh copy of what the server reads (deploy/policy.yaml),
// so the repository's own ./data is untouched, and `npx keyward` runs this
// checkout's bin/keyward.js. The default ports must be free.

/** The first ```sh block under a README heading. */
function block(heading: string): string {
  const readme = readFileSync("README.md", "utf8");
  const start = readme.indexOf(`${heading}\n`);
  if (start === -1) throw new Error(`README has no "${heading}"`);
  const match = /```sh\n([\s\S]*?)```/.exec(readme.slice(start));
  if (!match) throw new Error(`no sh block under "${heading}"`);
  return match[1] as string;
}

const SHIM = `npx() { if [ "$1" = keyward ]; then shift; node ${JSON.stringify(BIN)} "$@"; else command npx "$@"; fi; }\n`;

/** Runs README text in bash in `cwd`; each command's output follows the line that ran it. */
function paste(text: string, cwd: string) {
  const result = spawnSync("bash", ["-c", `${SHIM}set -o pipefail\n${text}`], {
    cwd,
    encoding: "utf8",
    env: { ...process.env, KEYWARD_CONFIG: "", KEYWARD_DATABASE: "", KEYWARD_TOKEN: "" },
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The lines of `stdout` matching `patterns`, in that order, each after the one before. */
function inOrder(stdout: string, patterns: readonly RegExp[]): string[] {
  const lines = stdout.split("\n");
  const found: string[] = [];
  let at = 0;
  for (const pattern of patterns) {
    const index = lines.findIndex((line, i) => i >= at && pattern.test(line));
    if (index === -1) throw new Error(`no line matching ${pattern} after line ${at}:\n${stdout}`);
    found.push(lines[index] as string);
    at = index + 1;
  }
  return found;
}

describe("README, pasted top to bottom", () => {
  const cwd = mkdtempSync(join(tmpdir(), "keyward-readme-"));
  let server: ServeProcess;

  beforeAll(async () => {
    mkdirSync(join(cwd, "deploy"));
    cpSync("deploy/policy.yaml", join(cwd, "deploy", "policy.yaml"));
    // `npm start` is `keyward serve` with the embedded defaults.
    server = await serve([], { KEYWARD_DATABASE: "" }, cwd);
    expect(server.ports).toEqual({ check: 9191, admin: 9192, http: 9193 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("runs the five-minute walkthrough as written, and each answer is the one it promises", () => {
    const out = paste(block("## Five-minute walkthrough"), cwd);
    expect(out.stderr).toBe("");
    const [created] = inOrder(out.stdout, [/^\{"key":/]);
    expect(JSON.parse(created as string).secret).toMatch(/^sk_live_[0-9a-f]{16}_[0-9a-f]{48}$/);
    const decisions = inOrder(out.stdout, [
      /^allow$/,
      /^deny 403 .*insufficient_scope/,
      /^deny 401 .*missing_credential/,
      /^deny 401 .*invalid_token/,
      /^\{"key":.*"secret":"sk_live_/, // rotate
      /^deny 401 .*invalid_token/, // the rotated-out secret
      /^[0-9a-f]{16} {2}sk_live_[0-9a-f]{16} {2}live {2}revoked/, // revoke
      /^\{"key":\{.*"kind":"agent"/,
      /^\{"keys":\[/,
    ]);
    expect(decisions).toHaveLength(9);
    expect(out.stdout).toContain("x-auth-tenant: acme");
    // The last command exits 0; a deny on the way does not stop a paste.
    expect(out.code).toBe(0);
  });

  it("runs First run as written: a bootstrap admin key, then the admin API", () => {
    const out = paste(block("### First run"), cwd);
    expect(out.stderr).toBe("");
    expect(out.code).toBe(0);
    const [viaCli, viaCurl] = inOrder(out.stdout, [/^\{"key":.*"tenant":"acme"/, /^\{"key":/]);
    expect(JSON.parse(viaCli as string).secret).toMatch(/^sk_live_/);
    expect(JSON.parse(viaCurl as string).key.name).toBe("CI importer");
    inOrder(out.stdout, [/ {2}live {2}active/, /CreateKey {2}[0-9a-f]{16}/]);
  });
});
