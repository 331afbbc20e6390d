import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, startAdminFixture } from "../helpers/admin.js";

/** The value of one sample line of a Prometheus exposition, or undefined. */
function sample(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const matches = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (matches) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("/metrics", () => {
  let f: AdminFixture;
  let scrape: () => Promise<string>;
  beforeAll(async () => {
    f = await startAdminFixture();
    scrape = async () => {
      const response = await fetch(`http://127.0.0.1:${f.kw.ports.http}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/plain");
      return response.text();
    };
  });
  afterAll(async () => f.close());

  it("counts decisions by transport, outcome, code and kind, with a latency histogram", async () => {
    const { secret, key } = f.kw.store.create({ kind: "live", scopes: ["sources:read"] });
    for (let i = 0; i < 3; i++) expect(await decide(f.check, secret)).toBe("allow");
    expect(await decide(f.check, secret, "/api/v1/sources", "POST")).toBe("insufficient_scope");
    expect(await decide(f.check, "sk_live_nope")).toBe("invalid_token");
    f.kw.store.revoke(key.id);
    expect(await decide(f.check, secret)).toBe("key_revoked");
    const forward = await fetch(`http://127.0.0.1:${f.kw.ports.http}/authz/api/v1/sources`);
    expect(forward.status).toBe(401);

    const text = await scrape();
    expect(
      sample(text, "keyward_decisions_total", {
        transport: "grpc",
        outcome: "allow",
        code: "none",
        kind: "live",
      }),
    ).toBe(3);
    expect(
      sample(text, "keyward_decisions_total", {
        outcome: "deny",
        code: "insufficient_scope",
        kind: "live",
      }),
    ).toBe(1);
    expect(sample(text, "keyward_decisions_total", { code: "invalid_token", kind: "none" })).toBe(
      1,
    );
    expect(sample(text, "keyward_decisions_total", { code: "key_revoked" })).toBe(1);
    expect(
      sample(text, "keyward_decisions_total", { transport: "http", code: "missing_credential" }),
    ).toBe(1);
    expect(sample(text, "keyward_check_duration_seconds_count", { transport: "grpc" })).toBe(6);
    expect(text).toContain("# HELP keyward_decisions_total ");
    expect(text).toContain("# TYPE keyward_check_duration_seconds histogram");
  });

  it("exposes cache, JWKS, admin and process metrics", async () => {
    const { secret } = f.kw.store.create({ kind: "live", scopes: ["sources:read"] });
    await decide(f.check, secret);
    await decide(f.check, secret);
    const token = await f.researcherJwt("auth0|metrics");
    await f.client(token).createKey({ scopes: ["runs:read"] });
    await expect(f.client("sk_live_bad").listKeys({})).rejects.toThrow();
    const text = await scrape();
    expect(sample(text, "keyward_key_cache_hits_total")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "keyward_key_cache_misses_total")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "keyward_jwks_fetches_total")).toBeGreaterThanOrEqual(1);
    expect(sample(text, "keyward_jwks_fetch_failures_total")).toBe(0);
    expect(
      sample(text, "keyward_admin_requests_total", { method: "CreateKey", outcome: "ok" }),
    ).toBe(1);
    expect(sample(text, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(sample(text, "nodejs_eventloop_lag_p99_seconds")).toBeGreaterThanOrEqual(0);
    // Every metric family has HELP text.
    const families = new Set([...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]));
    const helped = new Set([...text.matchAll(/^# HELP (\S+) \S/gm)].map((m) => m[1]));
    expect([...families].filter((name) => !helped.has(name))).toEqual([]);
  });
});
