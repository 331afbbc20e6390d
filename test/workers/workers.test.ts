import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import { BIN, keyward, type ServeProcess, serve } from "../helpers/cli.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";

// Real processes throughout: `keyward serve` with two Check workers
// (node:cluster), gRPC clients built from Envoy's protos, the CLI for keys.
// Which worker answered is read from the deny log line, which names it.

const dir = mkdtempSync(join(tmpdir(), "keyward-workers-"));
const db = join(dir, "keys.db");
const policy = join(dir, "policy.yaml");

function createKey(scopes: string): { id: string; secret: string } {
  const made = keyward(
    ["keys", "create", "--db", db, "--kind", "live", "--scopes", scopes, "--json"],
    {},
  );
  expect(made.code, made.stderr).toBe(0);
  const { key, secret } = JSON.parse(made.stdout);
  return { id: key.id, secret };
}

/** Polls `probe` until it returns true or `ms` pass; returns the time it took, or undefined. */
async function within(ms: number, probe: () => Promise<boolean>): Promise<number | undefined> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await probe()) return Date.now() - started;
    await sleep(10);
  }
  return undefined;
}

/** The Check worker processes of a main process (its children, from /proc). */
function workerPids(main: number): number[] {
  return readdirSync(`/proc/${main}/task`).flatMap((tid) =>
    readFileSync(`/proc/${main}/task/${tid}/children`, "utf8")
      .split(" ")
      .filter(Boolean)
      .map(Number),
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("workers: 2 — Check served by two processes on one port", () => {
  let server: ServeProcess;
  let admin: string;
  let reader: { id: string; secret: string };
  let clients: EnvoyCheckClient[];
  let http: string;

  /** Which worker answered on this client: sends a deny and finds its log line. */
  async function workerOf(client: EnvoyCheckClient): Promise<number> {
    const response = await client.check({ path: "/api/v1/sources" });
    const { decision_id } = JSON.parse(response.denied_response?.body ?? "{}");
    let worker: number | undefined;
    await within(10_000, async () => {
      const line = server
        .stderr()
        .split("\n")
        .find((l) => l.includes(decision_id));
      worker = line ? JSON.parse(line).worker : undefined;
      return worker !== undefined;
    });
    if (worker === undefined) throw new Error(`no deny line names a worker for ${decision_id}`);
    return worker;
  }

  async function decisionsCounted(code: string): Promise<number> {
    const text = await (await fetch(`${http}/metrics`)).text();
    let total = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("keyward_decisions_total{") && line.includes(`code="${code}"`)) {
        total += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
    }
    return total;
  }

  beforeAll(async () => {
    copyFileSync("deploy/policy.yaml", policy);
    admin = createKey("keys:admin").secret;
    reader = createKey("sources:read");
    const config = join(dir, "keyward.yaml");
    writeFileSync(config, "debug:\n  top_keys:\n    enabled: true\n");
    server = await serve(["--config", config], {
      KEYWARD_DATABASE: db,
      KEYWARD_POLICY: policy,
      KEYWARD_WORKERS: "2",
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    });
    http = `http://127.0.0.1:${server.ports.http}`;
    // Connections are handed to the workers in turn, so four connections
    // opened one after another reach both.
    clients = [];
    for (let i = 0; i < 4; i++) {
      const client = new EnvoyCheckClient(server.ports.check, { ownConnection: true });
      expect(await decide(client, reader.secret)).toBe("allow");
      clients.push(client);
    }
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    if (server.child.exitCode === null) await server.stop();
  });

  it("answers from both workers on the one Check port, and says so at start-up", async () => {
    expect(workerPids(server.child.pid as number)).toHaveLength(2);
    const answered = new Set<number>();
    for (const client of clients) answered.add(await workerOf(client));
    expect([...answered].sort()).toEqual([1, 2]);
    const started = server
      .stderr()
      .split("\n")
      .find((l) => l.includes('"keyward started"'));
    expect(JSON.parse(started as string).workers).toBe(2);
    const ready = await (await fetch(`${http}/readyz`)).json();
    expect(ready).toMatchObject({
      status: "ready",
      checks: { workers: "2 of 2 check workers listening" },
    });
  });

  it("sums every worker's decisions in /metrics", async () => {
    const before = await decisionsCounted("missing_credential");
    for (let i = 0; i < 10; i++) await (clients[i % 4] as EnvoyCheckClient).check({ path: "/" });
    expect((await decisionsCounted("missing_credential")) - before).toBe(10);
  });

  it("merges every worker's busiest keys into /debug/top-keys", async () => {
    // The reader's four allows of beforeAll went to both workers (two each).
    const report = (await (await fetch(`${http}/debug/top-keys`)).json()) as { keys: unknown[] };
    expect(report.keys).toEqual([
      { key_id: reader.id, kind: "live", tenant: "", requests: 4, denied: 0 },
    ]);
  });

  // How fast a revocation reaches the workers is measured by `npm run bench`;
  // here the deadlines are generous so that a busy machine does not fail it.
  it("refuses a key revoked through the admin API on every worker", async () => {
    const key = createKey("sources:read");
    for (const client of clients) expect(await decide(client, key.secret)).toBe("allow");
    const revoked = keyward([
      "keys",
      "revoke",
      key.id,
      "--server",
      `http://127.0.0.1:${server.ports.admin}`,
      "--token",
      admin,
    ]);
    expect(revoked.code, revoked.stderr).toBe(0);
    for (const client of clients) {
      const took = await within(
        10_000,
        async () => (await decide(client, key.secret)) === "key_revoked",
      );
      expect(took).toBeDefined();
    }
  });

  it("hands a reloaded policy (SIGHUP) to every worker, and keeps the old one when the new is bad", async () => {
    expect(await decide(clients[0] as EnvoyCheckClient, reader.secret, "/api/v1/reports")).toBe(
      "insufficient_scope",
    );
    writeFileSync(
      policy,
      "default: deny\nrules:\n  - method: GET\n    path: /api/v1/reports\n    scopes: [sources:read]\n",
    );
    server.child.kill("SIGHUP");
    for (const client of clients) {
      const took = await within(15_000, async () => {
        return (await decide(client, reader.secret, "/api/v1/reports")) === "allow";
      });
      expect(took).toBeDefined();
    }
    writeFileSync(policy, "default: maybe\nrules: [\n");
    server.child.kill("SIGHUP");
    expect(
      await within(15_000, async () => server.stderr().includes("reload refused; the previous")),
    ).toBeDefined();
    for (const client of clients) {
      expect(await decide(client, reader.secret, "/api/v1/reports")).toBe("allow");
    }

    copyFileSync("deploy/policy.yaml", policy);
    server.child.kill("SIGHUP");
    for (const client of clients) {
      const took = await within(15_000, async () => {
        return (await decide(client, reader.secret, "/api/v1/reports")) === "insufficient_scope";
      });
      expect(took).toBeDefined();
    }
  });

  it("replaces a worker that dies, and is not ready while one is missing", async () => {
    const [victim, survivor] = workerPids(server.child.pid as number) as [number, number];
    process.kill(victim, "SIGKILL");
    expect(
      await within(10_000, async () => {
        const ready = (await (await fetch(`${http}/readyz`)).json()) as {
          checks: Record<string, string>;
        };
        return ready.checks.workers === "1 of 2 check workers listening";
      }),
    ).toBeDefined();
    // A new connection in the meantime is served by the survivor.
    const fresh = new EnvoyCheckClient(server.ports.check, { ownConnection: true });
    try {
      expect(await decide(fresh, reader.secret)).toBe("allow");
    } finally {
      fresh.close();
    }
    expect(
      await within(10_000, async () => (await fetch(`${http}/readyz`)).status === 200),
    ).toBeDefined();
    const now = workerPids(server.child.pid as number);
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    // The log lines travel through a pipe and may arrive after /readyz says so.
    expect(
      await within(10_000, async () => server.stderr().includes('"check worker replaced"')),
    ).toBeDefined();
    expect(server.stderr()).toContain('"check worker exited; starting another"');
  });

  it("drains on SIGTERM: the main process exits 0 and leaves no worker behind", async () => {
    const pids = workerPids(server.child.pid as number);
    expect(await server.stop("SIGTERM")).toBe(0);
    for (const pid of pids) {
      expect(await within(10_000, async () => !alive(pid))).toBeDefined();
    }
  });
});

describe("workers: a worker that cannot listen", () => {
  it("stops start-up with one line naming the worker and the cause", async () => {
    const taken = createServer();
    await new Promise<void>((done) => taken.listen(0, "127.0.0.1", done));
    const port = (taken.address() as { port: number }).port;
    try {
      const result = spawnSync(process.execPath, [BIN, "serve"], {
        encoding: "utf8",
        env: {
          ...process.env,
          KEYWARD_CONFIG: "",
          KEYWARD_DATABASE: join(dir, "other.db"),
          KEYWARD_WORKERS: "2",
          KEYWARD_CHECK_PORT: String(port),
          KEYWARD_ADMIN_PORT: "0",
          KEYWARD_HTTP_PORT: "0",
        },
        timeout: 30_000,
      });
      expect(result.status).toBe(1);
      const last = result.stderr.trim().split("\n").at(-1) as string;
      expect(last).toMatch(/^keyward: check worker [12] stopped before listening: .*EADDRINUSE/);
    } finally {
      taken.close();
    }
  });
});
