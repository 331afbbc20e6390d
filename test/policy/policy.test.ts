import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { routePath } from "../../src/pipeline/path.js";
import {
  compilePolicy,
  loadPolicyFile,
  notAdmitted,
  policySchema,
} from "../../src/policy/policy.js";

const policy = (doc: unknown) => compilePolicy(policySchema.parse(doc));

describe("route policy", () => {
  const p = policy({
    rules: [
      { method: "GET", path: "/files/{path...}", scopes: ["files:read"] },
      { method: ["put", "PATCH"], path: "/items/{id}", scopes: ["items:write"] },
      { method: "*", path: "/odd/(literal)/{id}", scopes: [] },
      { method: "GET", path: "/items/{id}", scopes: ["first"] },
      { method: "GET", path: "/items/{id}", scopes: ["second"] },
    ],
  });

  it("matches {name...} against the rest of the path", () => {
    expect(p.requirementFor("GET", "/files/a/b/c.txt")).toEqual({
      type: "scopes",
      scopes: ["files:read"],
    });
    expect(p.requirementFor("GET", "/files")).toEqual({ type: "deny" });
  });

  it("matches {name} against exactly one segment", () => {
    expect(p.requirementFor("PUT", "/items/42")).toEqual({
      type: "scopes",
      scopes: ["items:write"],
    });
    expect(p.requirementFor("PUT", "/items/42/x")).toEqual({ type: "deny" });
  });

  it("accepts a method list, any case, and * for every method", () => {
    expect(p.requirementFor("PATCH", "/items/1").type).toBe("scopes");
    expect(p.requirementFor("DELETE", "/items/1")).toEqual({ type: "deny" });
    expect(p.requirementFor("OPTIONS", "/odd/(literal)/7")).toEqual({ type: "scopes", scopes: [] });
  });

  it("treats pattern characters in literal text literally", () => {
    expect(p.requirementFor("GET", "/odd/literal/7")).toEqual({ type: "deny" });
  });

  it("lets the first matching rule win", () => {
    expect(p.requirementFor("GET", "/items/1")).toEqual({ type: "scopes", scopes: ["first"] });
  });

  it("falls back to the default: deny, or any valid credential when authenticated", () => {
    expect(policy({}).requirementFor("GET", "/x")).toEqual({ type: "deny" });
    expect(policy({ default: "authenticated" }).requirementFor("GET", "/x")).toEqual({
      type: "scopes",
      scopes: [],
    });
  });

  it("confines worker keys to their run, with a configurable template", () => {
    const binding = { experiment: "e", variation: "1", run: "2" };
    const std = policy({});
    expect(std.withinRun(binding, "/experiments/e/variations/1/runs/2")).toBe(true);
    expect(std.withinRun(binding, "/experiments/e/variations/1/runs/2/logs")).toBe(true);
    expect(std.withinRun(binding, "/experiments/e/variations/1/runs/22")).toBe(false);
    const custom = policy({ worker_run_path: "/v2/runs/{experiment}/{variation}/{run}" });
    expect(custom.withinRun(binding, "/v2/runs/e/1/2/artifacts")).toBe(true);
    expect(custom.withinRun(binding, "/experiments/e/variations/1/runs/2")).toBe(false);
  });

  it("rejects a malformed template naming the rule", () => {
    expect(() => policy({ rules: [{ method: "GET", path: "/a/{b", scopes: [] }] })).toThrow(
      /rules\.0\.path/,
    );
  });

  it("loads a file and names the field of a bad one", () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-policy-"));
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "rules:\n  - method: GET\n    path: /x\n    scope: [a]\n");
    expect(() => loadPolicyFile(bad)).toThrow(/rules\.0: scope: unknown field|rules\.0\.scope/);
    expect(loadPolicyFile("deploy/policy.yaml").requirementFor("GET", "/api/v1/sources")).toEqual({
      type: "scopes",
      scopes: ["sources:read"],
      kinds: ["live"],
    });
  });
});

describe("route policy: which credentials a rule admits", () => {
  const ISSUER = "https://tenant.eu.auth0.com/";
  const loadRules = (rules: string, issuers: string[] = [ISSUER]) => {
    const file = join(mkdtempSync(join(tmpdir(), "keyward-policy-")), "policy.yaml");
    writeFileSync(file, `rules:\n${rules}`);
    return loadPolicyFile(file, { issuers });
  };

  it("carries kinds: and jwt: into the requirement", () => {
    const p = loadRules(
      "  - method: GET\n    path: /r\n    scopes: []\n    kinds: [agent, jwt, agent]\n" +
        `    jwt: { issuers: ["${ISSUER}"], roles: [researcher] }\n`,
    );
    expect(p.limitsCredentials).toBe(true);
    expect(p.requirementFor("GET", "/r")).toEqual({
      type: "scopes",
      scopes: [],
      kinds: ["agent", "jwt"],
      jwt: { issuers: [ISSUER], roles: ["researcher"] },
    });
    expect(loadRules("  - method: GET\n    path: /r\n    scopes: []\n").limitsCredentials).toBe(
      false,
    );
  });

  it("decides admission by kind, then by the JWT's issuer and role", () => {
    const requirement = {
      type: "scopes",
      scopes: [],
      kinds: ["worker", "jwt"],
      jwt: { issuers: [ISSUER], roles: ["researcher"] },
    } as const;
    expect(notAdmitted(requirement, { kind: "worker" })).toBeUndefined();
    expect(notAdmitted(requirement, { kind: "live" })).toMatch(/live/);
    expect(
      notAdmitted(requirement, { kind: "jwt", issuer: ISSUER, role: "researcher" }),
    ).toBeUndefined();
    expect(notAdmitted(requirement, { kind: "jwt", issuer: ISSUER, role: "admin" })).toMatch(
      /role admin/,
    );
    expect(
      notAdmitted(requirement, { kind: "jwt", issuer: "https://other/", role: "researcher" }),
    ).toMatch(/issuer/);
    // No kinds: every kind; no jwt: every configured issuer.
    expect(notAdmitted({ type: "scopes", scopes: [] }, { kind: "live" })).toBeUndefined();
  });

  it.each([
    ["an unknown kind", "    kinds: [live, robot]\n", /rules\.0\.kinds\.1/],
    ["an empty kinds list", "    kinds: []\n", /rules\.0\.kinds/],
    ["an unknown role", "    jwt: { roles: [owner] }\n", /rules\.0\.jwt\.roles\.0/],
    ["an unknown jwt field", "    jwt: { role: [admin] }\n", /rules\.0\.jwt/],
    [
      "jwt: on a rule whose kinds leave out jwt",
      "    kinds: [live]\n    jwt: { roles: [admin] }\n",
      /rules\.0\.jwt: a rule whose kinds leave out jwt/,
    ],
    [
      "an issuer that is not configured",
      '    jwt: { issuers: ["https://typo.example/"] }\n',
      /rules\.0\.jwt\.issuers\.0: https:\/\/typo\.example\/ is not a configured issuer/,
    ],
  ])("refuses %s at load, in one line naming the field", (_name, extra, message) => {
    let error: Error | undefined;
    try {
      loadRules(`  - method: GET\n    path: /r\n    scopes: []\n${extra}`);
    } catch (caught) {
      error = caught as Error;
    }
    expect(error?.message).toMatch(message);
    expect(error?.message).not.toContain("\n");
  });
});

describe("route path", () => {
  it.each([
    ["/a/b?x=1", "/a/b"],
    ["/a/b", "/a/b"],
    ["/a/..b/c.d", "/a/..b/c.d"],
  ])("keeps %s as %s", (input, output) => expect(routePath(input)).toBe(output));

  it.each([
    "/a/../b",
    "/a/./b",
    "/a/..",
    "/a/%2e%2e/b",
    "/a/%2F",
    "/a\\b",
    "a/b",
    "*",
    "/a/\u0000",
    "",
    "/a/b#frag",
    "/a/%zz",
    "/a/%",
    "/a/%ff",
  ])("refuses the ambiguous path %j", (input) => expect(routePath(input)).toBeUndefined());
});
