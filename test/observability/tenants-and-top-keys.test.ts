import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deny } from "../../src/auth/decision.js";
import type { Identity } from "../../src/auth/identity.js";
import { mergeTopKeys, TopKeys } from "../../src/observability/top-keys.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

/** The value of one series in a Prometheus exposition, or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("keyward_tenant_decisions_total", () => {
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  beforeAll(async () => {
    kw = await startTestKeyward({ metrics: { max_tenants: 2 } });
    check = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    check.close();
    await kw.close();
  });

  it("counts the first tenants by name and folds the rest into other", async () => {
    const ask = (token: string | undefined, method = "GET") =>
      check.check({
        method,
        path: "/api/v1/sources",
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    const tenants = ["acme", "globex", "initech", "umbrella"];
    const secrets = tenants.map(
      (tenant) => kw.store.create({ kind: "live", tenant, scopes: ["sources:read"] }).secret,
    );
    for (const [index, secret] of secrets.entries()) {
      for (let i = 0; i <= index; i++) await ask(secret);
    }
    await ask(secrets[0], "DELETE"); // a deny that knows its tenant (insufficient_scope)
    await ask(undefined); // no credential: no tenant
    const text = await (await fetch(`http://127.0.0.1:${kw.ports.http}/metrics`)).text();
    const series = (tenant: string, outcome: string) =>
      sample(text, `keyward_tenant_decisions_total{tenant="${tenant}",outcome="${outcome}"}`);
    expect(series("acme", "allow")).toBe(1);
    expect(series("globex", "allow")).toBe(2);
    expect(series("other", "allow")).toBe(3 + 4);
    expect(series("acme", "deny")).toBe(1);
    expect(series("none", "deny")).toBe(1);
    expect(text).not.toContain('tenant="initech"');
    expect(text).not.toContain('tenant="umbrella"');
  });

  it("refuses a bad cap at start-up with one line naming the field", async () => {
    await expect(startTestKeyward({ metrics: { max_tenants: -1 } })).rejects.toThrow(
      /^[^\n]*metrics\.max_tenants[^\n]*$/,
    );
  });
});

describe("/debug/top-keys", () => {
  it("is not served unless configured", async () => {
    const kw = await startTestKeyward();
    try {
      const response = await fetch(`http://127.0.0.1:${kw.ports.http}/debug/top-keys`);
      expect(response.status).toBe(404);
    } finally {
      await kw.close();
    }
  });

  it("lists the busiest keys of the window, denies included, and never a secret", async () => {
    const kw = await startTestKeyward({ debug: { top_keys: { enabled: true } } });
    const check = new EnvoyCheckClient(kw.ports.check);
    try {
      const busy = kw.store.create({ kind: "live", tenant: "acme", scopes: ["sources:read"] });
      const quiet = kw.store.create({ kind: "live", tenant: "globex", scopes: ["sources:read"] });
      const ask = (secret: string, method = "GET") =>
        check.check({
          method,
          path: "/api/v1/sources",
          headers: { authorization: `Bearer ${secret}` },
        });
      for (let i = 0; i < 5; i++) await ask(busy.secret);
      await ask(busy.secret, "DELETE");
      await ask(quiet.secret);
      // Forward-auth counts too.
      await fetch(`http://127.0.0.1:${kw.ports.http}/authz/api/v1/sources`, {
        headers: { authorization: `Bearer ${quiet.secret}` },
      });
      const response = await fetch(`http://127.0.0.1:${kw.ports.http}/debug/top-keys`);
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(JSON.parse(text)).toEqual({
        window_seconds: 300,
        error_bound: 0,
        keys: [
          { key_id: busy.key.id, kind: "live", tenant: "acme", requests: 6, denied: 1 },
          { key_id: quiet.key.id, kind: "live", tenant: "globex", requests: 2, denied: 0 },
        ],
      });
      expect(text).not.toContain(busy.secret.slice(-40));
      const one = (await (
        await fetch(`http://127.0.0.1:${kw.ports.http}/debug/top-keys?limit=1`)
      ).json()) as { keys: unknown[] };
      expect(one.keys).toHaveLength(1);
      const bad = await fetch(`http://127.0.0.1:${kw.ports.http}/debug/top-keys?limit=0`);
      expect(bad.status).toBe(400);
    } finally {
      check.close();
      await kw.close();
    }
  });

  it("refuses a window that is not whole minutes at start-up with one line naming the field", async () => {
    await expect(
      startTestKeyward({ debug: { top_keys: { enabled: true, window: "90s" } } }),
    ).rejects.toThrow(/^[^\n]*debug\.top_keys\.window[^\n]*$/);
  });
});

describe("TopKeys (the tally behind /debug/top-keys)", () => {
  const identity = (keyId: string): Identity => ({
    kind: "live",
    subject: keyId,
    keyId,
    tenant: "t",
    scopes: [],
    expiresAt: undefined,
    binding: undefined,
  });
  const allow = (keyId: string) =>
    ({ allow: true, decisionId: "d", identity: identity(keyId) }) as const;

  it("forgets minutes that left the window", () => {
    let now = 0;
    const top = new TopKeys({ windowMinutes: 2, now: () => now });
    top.record(allow("old"));
    now += 60_000;
    top.record(allow("new"));
    expect(
      top
        .report()
        .keys.map((k) => k.key_id)
        .sort(),
    ).toEqual(["new", "old"]);
    now += 60_000;
    expect(top.report().keys.map((k) => k.key_id)).toEqual(["new"]);
    now += 60_000;
    expect(top.report().keys).toEqual([]);
  });

  it("keeps memory bounded under a flood of distinct key ids, and keeps the heavy key", () => {
    const top = new TopKeys({ windowMinutes: 1, capacity: 100, now: () => 0 });
    for (let i = 0; i < 50; i++) top.record(allow("heavy"));
    for (let i = 0; i < 100_000; i++) top.record(deny("invalid_token", { keyId: `k${i}` }));
    const report = top.report(1000);
    expect(report.keys.length).toBeLessThanOrEqual(100);
    expect(report.keys[0]).toMatchObject({ key_id: "heavy", requests: 50 });
    expect(report.error_bound).toBe(1);
  });

  it("merges the reports of several processes", () => {
    const a = new TopKeys({ now: () => 0 });
    const b = new TopKeys({ now: () => 0 });
    a.record(allow("x"));
    b.record(allow("x"));
    b.record(allow("y"));
    expect(mergeTopKeys([a.report(), b.report()]).keys.map((k) => [k.key_id, k.requests])).toEqual([
      ["x", 2],
      ["y", 1],
    ]);
  });
});
