import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowance, denial, EnvoyCheckClient, structToJson } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

// Shadow mode (DESIGN "Route policy"): a would-be deny is let through and
// recorded in the log line, the dynamic metadata, keyward_shadow_denies_total
// and, on /authz, x-keyward-shadow-deny. Real keyward, real gRPC client built
// from Envoy's canonical protos, real fetch.
const RULES = `
rules:
  - method: GET
    path: /api/v1/sources
    scopes: [sources:read]
  - method: POST
    path: /api/v1/sources
    scopes: [sources:write]
    mode: shadow
  - method: DELETE
    path: /api/v1/sources
    scopes: [sources:write]
    mode: enforce
`;

describe("shadow mode", () => {
  const dir = mkdtempSync(join(tmpdir(), "keyward-shadow-"));
  const policy = join(dir, "policy.yaml");
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  let reader: string;

  const writePolicy = (mode: "enforce" | "shadow") =>
    writeFileSync(policy, `mode: ${mode}\n${RULES}`);
  const authz = (method: string, token?: string, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${kw.ports.http}/authz/api/v1/sources`, {
      method,
      headers: { ...(token && { authorization: `Bearer ${token}` }), ...headers },
    });
  const shadowCount = async (code: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${kw.ports.http}/metrics`)).text();
    const line = text
      .split("\n")
      .find((l) => l.startsWith(`keyward_shadow_denies_total{code="${code}"}`));
    return line === undefined ? 0 : Number(line.split(" ").pop());
  };
  const logOf = (decisionId: string) =>
    kw.logs.records.filter((record) => record.decision_id === decisionId);

  beforeAll(async () => {
    writePolicy("enforce");
    kw = await startTestKeyward({ policy });
    check = new EnvoyCheckClient(kw.ports.check);
    reader = kw.store.create({ kind: "live", scopes: ["sources:read"] }).secret;
  });
  afterAll(async () => {
    check.close();
    await kw.close();
  });

  it("allows on a shadow rule what enforce would deny, with the code in metadata, log and metric (gRPC)", async () => {
    const before = await shadowCount("insufficient_scope");
    const response = await check.check({
      method: "POST",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${reader}`, "x-auth-tenant": "forged" },
    });
    const allowed = allowance(response);
    // The identity the key proved still goes upstream; the forged header does not.
    expect(allowed.headers["x-auth-kind"]).toBe("live");
    expect(allowed.remove).toContain("x-auth-tenant");
    const metadata = structToJson(response.dynamic_metadata);
    expect(metadata).toMatchObject({ shadow_deny: "insufficient_scope", kind: "live" });
    const lines = logOf(metadata.decision_id as string);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      shadow_deny: "insufficient_scope",
      reason: "missing scopes: sources:write",
      method: "POST",
      path: "/api/v1/sources",
    });
    expect(lines[0]).not.toHaveProperty("error");
    expect(await shadowCount("insufficient_scope")).toBe(before + 1);
  });

  it("keeps enforcing rules without shadow mode, and records nothing as shadow there", async () => {
    const before = await shadowCount("insufficient_scope");
    const response = await check.check({
      method: "DELETE",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(denial(response).httpStatus).toBe("Forbidden");
    expect(structToJson(response.dynamic_metadata)).not.toHaveProperty("shadow_deny");
    expect(await shadowCount("insufficient_scope")).toBe(before);
  });

  it("records malformed, unknown and missing credentials on a shadow rule and lets them through with no identity", async () => {
    const unknown = `sk_live_${"0".repeat(16)}_${"a".repeat(48)}`;
    const cases: [string | undefined, string][] = [
      [undefined, "missing_credential"],
      ["not-a-key", "invalid_token"],
      [unknown, "invalid_token"],
    ];
    for (const [token, code] of cases) {
      const response = await check.check({
        method: "POST",
        path: "/api/v1/sources",
        headers: {
          ...(token && { authorization: `Bearer ${token}` }),
          "x-auth-subject": "forged",
        },
      });
      const allowed = allowance(response);
      expect(allowed.headers).toEqual({});
      expect(allowed.remove).toContain("x-auth-subject");
      const metadata = structToJson(response.dynamic_metadata);
      expect(metadata.shadow_deny).toBe(code);
      expect(metadata).not.toHaveProperty("kind");
      expect(logOf(metadata.decision_id as string)[0]?.shadow_deny).toBe(code);
    }
    expect(kw.logs.text).not.toContain(unknown);
  });

  it("allows on /authz with x-keyward-shadow-deny, empty identity headers and no-store", async () => {
    const before = await shadowCount("missing_credential");
    const response = await authz("POST", undefined, { "x-auth-tenant": "forged" });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-keyward-shadow-deny")).toBe("missing_credential");
    expect(response.headers.get("x-auth-tenant")).toBe("");
    expect(response.headers.get("cache-control")).toBe("no-store");
    expect(await shadowCount("missing_credential")).toBe(before + 1);

    const withKey = await authz("POST", reader);
    expect(withKey.status).toBe(200);
    expect(withKey.headers.get("x-keyward-shadow-deny")).toBe("insufficient_scope");
    expect(withKey.headers.get("x-auth-kind")).toBe("live");

    const enforced = await authz("DELETE", reader);
    expect(enforced.status).toBe(403);
    expect(enforced.headers.get("x-keyward-shadow-deny")).toBeNull();
    // A plain allow names no shadow deny.
    const plain = await authz("GET", reader);
    expect(plain.status).toBe(200);
    expect(plain.headers.get("x-keyward-shadow-deny")).toBeNull();
  });

  it("switches the whole file to shadow and back by reload, from the next request", async () => {
    // GET with no credential: a rule without its own mode takes the file's.
    const ask = () => check.check({ method: "GET", path: "/api/v1/sources" });
    const unmatched = () => check.check({ method: "GET", path: "/nowhere" });
    expect(denial(await ask()).body.error).toBe("missing_credential");

    writePolicy("shadow");
    expect(await kw.keyward.reload()).toBe(true);
    expect(structToJson((await ask()).dynamic_metadata).shadow_deny).toBe("missing_credential");
    // The file's mode covers requests no rule matches too.
    const nowhere = await unmatched();
    expect(structToJson(nowhere.dynamic_metadata).shadow_deny).toBe("missing_credential");
    // A rule that says enforce keeps enforcing under a shadow file.
    const enforced = await check.check({
      method: "DELETE",
      path: "/api/v1/sources",
      headers: { authorization: `Bearer ${reader}` },
    });
    expect(denial(enforced).body.error).toBe("insufficient_scope");

    writePolicy("enforce");
    expect(await kw.keyward.reload()).toBe(true);
    expect(denial(await ask()).body.error).toBe("missing_credential");
  });

  it("refuses an unknown mode at start-up with one line naming the field", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "rules:\n  - method: GET\n    path: /x\n    scopes: []\n    mode: dry-run\n",
    );
    await expect(startTestKeyward({ policy: bad })).rejects.toThrow(/rules\.0\.mode/);
  });
});
