import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, startAdminFixture } from "../helpers/admin.js";
import { keyward, type ServeProcess, serve } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { nowSeconds } from "../helpers/jwks.js";

// A real /metrics scrape, after Checks of every outcome, piped through
// Prometheus's own linter (Debian's `prometheus` package; .ci/run installs it).

/**
 * prom-client's own gauges whose names end in _total (nodejs_active_handles_total,
 * ...): dashboards query them by these names, so they are kept (issue 18 point 9).
 */
const ACCEPTED = /^nodejs_active_\w+_total non-counter metrics should not have "_total" suffix$/;

/** promtool's findings on an exposition, minus the accepted ones; [] means clean. */
function promtoolProblems(exposition: string): string[] {
  const result = spawnSync("promtool", ["check", "metrics"], {
    input: exposition,
    encoding: "utf8",
    timeout: 30_000,
  });
  if (result.error) throw result.error;
  const findings = `${result.stdout}\n${result.stderr}`
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !ACCEPTED.test(line));
  // promtool exits non-zero on any finding; with only accepted ones left, that is all it said.
  if (result.status !== 0 && findings.length === 0) return [];
  return result.status === 0 ? [] : findings;
}

/** The TYPE line of every family. */
function types(exposition: string): Map<string, string> {
  return new Map(
    [...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
}

/** Sum of a family's samples whose line contains every `fragment`. */
function total(exposition: string, name: string, ...fragments: string[]): number {
  let sum = 0;
  for (const line of exposition.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (fragments.every((fragment) => line.includes(fragment))) {
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return sum;
}

/**
 * Families every Node.js / process dashboard expects, under prom-client's
 * default names (process_start_time_seconds too, but the workers' aggregate
 * leaves it out: three processes have no one start time).
 */
const PROCESS_FAMILIES = [
  "process_resident_memory_bytes",
  "process_cpu_seconds_total",
  "nodejs_eventloop_lag_seconds",
  "nodejs_heap_size_used_bytes",
  "nodejs_gc_duration_seconds",
];

function expectConventional(exposition: string): void {
  const type = types(exposition);
  for (const name of PROCESS_FAMILIES) expect(type.has(name), name).toBe(true);
  expect([...type.keys()].filter((name) => name.startsWith("keyward_process_"))).toEqual([]);
  expect([...type.keys()].filter((name) => name.startsWith("keyward_nodejs_"))).toEqual([]);
  // Every *_total family is a counter, except prom-client's accepted gauges.
  const notCounters = [...type]
    .filter(([name, kind]) => name.endsWith("_total") && kind !== "counter")
    .map(([name]) => name)
    .filter((name) => !name.startsWith("nodejs_active_"));
  expect(notCounters).toEqual([]);
}

describe("/metrics passes promtool check metrics", () => {
  let f: AdminFixture;
  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(() => f?.close());

  it("after Checks of every outcome, with process metrics under their conventional names", async () => {
    const { store, ports } = f.kw;
    const reader = store.create({ kind: "live", scopes: ["sources:read"] });
    expect(await decide(f.check, reader.secret)).toBe("allow");
    expect(await decide(f.check, reader.secret)).toBe("allow");
    expect(await decide(f.check, reader.secret, "/api/v1/sources", "POST")).toBe(
      "insufficient_scope",
    );
    expect(await decide(f.check, "sk_live_0123456789abcdef_nope")).toBe("invalid_token");
    const expired = store.create({ kind: "agent", scopes: [], expiresAt: Date.now() - 60_000 });
    expect(await decide(f.check, expired.secret)).toBe("key_expired");
    const revoked = store.create({ kind: "user", scopes: [] });
    store.revoke(revoked.key.id);
    expect(await decide(f.check, revoked.secret)).toBe("key_revoked");
    const jwt = await f.researcherJwt("auth0|promtool", ["sources:read"]);
    expect(await decide(f.check, jwt)).toBe("allow");
    expect(await decide(f.check, jwt)).toBe("allow");
    const stale = await f.researcherJwt("auth0|promtool", ["sources:read"], {
      iat: nowSeconds() - 120,
      exp: nowSeconds() - 60,
    });
    expect(await decide(f.check, stale)).toBe("token_expired");
    const none = await f.check.check({ path: "/api/v1/sources" });
    expect(none.status?.code).toBe(16);
    const authz = await fetch(`http://127.0.0.1:${ports.http}/authz/api/v1/sources`);
    expect(authz.status).toBe(401);
    await f.client(f.rootToken).listKeys({});
    await expect(f.client("sk_live_bad").listKeys({})).rejects.toThrow();

    const exposition = await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text();
    expect(promtoolProblems(exposition)).toEqual([]);
    expectConventional(exposition);
    const type = types(exposition);
    for (const name of [
      "keyward_decisions_total",
      "keyward_key_cache_hits_total",
      "keyward_key_cache_misses_total",
      "keyward_jwt_cache_hits_total",
      "keyward_jwt_verifications_total",
      "keyward_jwt_cache_invalidations_total",
      "keyward_jwks_fetches_total",
      "keyward_jwks_fetch_failures_total",
      "keyward_admin_requests_total",
    ]) {
      expect(type.get(name), name).toBe("counter");
    }
    expect(total(exposition, "keyward_jwt_cache_hits_total")).toBe(1);
    expect(total(exposition, "keyward_jwt_verifications_total")).toBe(2);
    expect(total(exposition, "keyward_key_cache_hits_total")).toBeGreaterThanOrEqual(1);

    // Counters read from their owners at scrape time stay counts, not samples:
    // a second scrape adds only what happened since the first.
    expect(await decide(f.check, jwt)).toBe("allow");
    const again = await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text();
    expect(total(again, "keyward_jwt_cache_hits_total")).toBe(2);
    expect(total(again, "keyward_jwt_verifications_total")).toBe(2);
  });

  it("is a linter that fails: it reports a gauge named *_total", () => {
    const bad = "# HELP x_total a count\n# TYPE x_total gauge\nx_total 1\n";
    expect(promtoolProblems(bad)).toEqual([
      'x_total non-counter metrics should not have "_total" suffix',
    ]);
  });
});

describe("/metrics of Check workers (workers: 2) passes promtool check metrics", () => {
  let server: ServeProcess | undefined;
  afterAll(async () => {
    await server?.stop("SIGTERM");
  });

  it("sums the workers' series under the same names and types", async () => {
    const db = join(mkdtempSync(join(tmpdir(), "keyward-promtool-")), "keys.db");
    const made = keyward(
      ["keys", "create", "--db", db, "--kind", "live", "--scopes", "sources:read", "--json"],
      {},
    );
    expect(made.code, made.stderr).toBe(0);
    const { secret } = JSON.parse(made.stdout) as { secret: string };
    server = await serve([], {
      KEYWARD_DATABASE: db,
      KEYWARD_POLICY: "deploy/policy.yaml",
      KEYWARD_WORKERS: "2",
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    });
    // Own connections, so that (by the main process's round robin) both workers answer.
    const clients = [0, 1, 2, 3].map(
      () => new EnvoyCheckClient(server?.ports.check as number, { ownConnection: true }),
    );
    try {
      for (const client of clients) {
        expect(await decide(client, secret)).toBe("allow");
        expect(await decide(client, "sk_live_0123456789abcdef_nope")).toBe("invalid_token");
      }
    } finally {
      for (const client of clients) client.close();
    }
    const http = `http://127.0.0.1:${server.ports.http}`;
    const exposition = await (await fetch(`${http}/metrics`)).text();
    expect(promtoolProblems(exposition)).toEqual([]);
    expectConventional(exposition);
    expect(total(exposition, "keyward_decisions_total", 'outcome="allow"')).toBe(4);
    expect(total(exposition, "keyward_decisions_total", 'code="invalid_token"')).toBe(4);
    expect(types(exposition).get("keyward_key_cache_misses_total")).toBe("counter");
    // Three processes (main and two workers) report their memory.
    expect(total(exposition, "process_resident_memory_bytes")).toBeGreaterThan(0);
  });
});
