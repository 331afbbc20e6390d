import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

/** Asks `count` Checks, `parallel` at a time; resolves with the responses' status codes. */
async function checks(
  client: EnvoyCheckClient,
  count: number,
  parallel: number,
  token?: string,
): Promise<number[]> {
  const codes: number[] = [];
  let next = 0;
  const lane = async () => {
    while (next < count) {
      next++;
      const response = await client.check({
        path: "/api/v1/sources",
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
      codes.push(response.status?.code ?? -1);
    }
  };
  await Promise.all(Array.from({ length: parallel }, lane));
  return codes;
}

// Sampled allow lines (log.allow_sample_rate): binomial, so the count of
// lines is checked against bounds five standard deviations wide (a false
// failure about once in 1.7 million runs), not against an exact number.
describe("log.allow_sample_rate", () => {
  let kw: TestKeyward;
  let check: EnvoyCheckClient;
  beforeAll(async () => {
    kw = await startTestKeyward({ log: { allow_sample_rate: 0.25 } });
    check = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    check.close();
    await kw.close();
  });

  it("logs about that share of allows, with the deny lines' fields and no secret", async () => {
    const { key, secret } = kw.store.create({
      kind: "live",
      tenant: "acme",
      scopes: ["sources:read"],
    });
    const n = 2000;
    const p = 0.25;
    const codes = await checks(check, n, 32, secret);
    expect(codes.every((code) => code === 0)).toBe(true);
    const lines = kw.logs.records.filter((record) => record.msg === "check allowed");
    const sd = Math.sqrt(n * p * (1 - p));
    expect(lines.length).toBeGreaterThan(n * p - 5 * sd);
    expect(lines.length).toBeLessThan(n * p + 5 * sd);
    expect(lines[0]).toMatchObject({
      name: "check",
      outcome: "allow",
      key_id: key.id,
      kind: "live",
      tenant: "acme",
      scopes: "sources:read",
      method: "GET",
      path: "/api/v1/sources",
    });
    expect(lines[0]?.decision_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Set(lines.map((line) => line.decision_id)).size).toBe(lines.length);
    expect(kw.logs.text).not.toContain(secret.slice(-40));
  });

  it("logs no allow at rate 0 and every allow at rate 1", async () => {
    for (const [rate, expected] of [
      [0, 0],
      [1, 50],
    ] as const) {
      const other = await startTestKeyward({ log: { allow_sample_rate: rate } });
      const client = new EnvoyCheckClient(other.ports.check);
      try {
        const { secret } = other.store.create({ kind: "live", scopes: ["sources:read"] });
        await checks(client, 50, 8, secret);
        const lines = other.logs.records.filter((record) => record.msg === "check allowed");
        expect(lines).toHaveLength(expected);
      } finally {
        client.close();
        await other.close();
      }
    }
  });

  it("refuses a rate outside 0..1 at start-up with one line naming the field", async () => {
    await expect(startTestKeyward({ log: { allow_sample_rate: 1.5 } })).rejects.toThrow(
      /^[^\n]*log\.allow_sample_rate[^\n]*$/,
    );
  });
});

// The decision-log file: deny lines go to a file rotated by size, and a
// burst of concurrent denies loses no line and splits none across a rotation.
describe("log.file", () => {
  it("writes every decision line to the rotating file, none lost or split across rotations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-decisions-"));
    const file = join(dir, "decisions.log");
    const kw = await startTestKeyward({
      log: { file: { path: file, max_size: "4K", max_files: 200 } },
    });
    const check = new EnvoyCheckClient(kw.ports.check);
    const read = () =>
      readdirSync(dir)
        .filter((name) => name.startsWith("decisions.log"))
        .flatMap((name) => readFileSync(join(dir, name), "utf8").split("\n").filter(Boolean));
    const n = 1500;
    try {
      const codes = await checks(check, n, 48);
      expect(codes.every((code) => code === 16)).toBe(true);
    } finally {
      check.close();
      await kw.close();
    }
    // close() resolves once the stream has written out what it buffered and
    // closed the file: every line is there now, in a directory nobody renames.
    const records = read().map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toHaveLength(n);
    expect(new Set(records.map((record) => record.decision_id)).size).toBe(n);
    expect(records.every((record) => record.error === "missing_credential")).toBe(true);
    // It rotated many times (4 KiB per file), and the lines did not go to stderr.
    const rotated = readdirSync(dir).filter((name) => /^decisions\.log\.\d+$/.test(name));
    expect(rotated.length).toBeGreaterThan(10);
    expect(kw.logs.records.filter((record) => record.msg === "check denied")).toEqual([]);
  });

  it("refuses a bad size or count at start-up with one line naming the field", async () => {
    await expect(
      startTestKeyward({ log: { file: { path: "/tmp/x.log", max_size: "10MB" } } }),
    ).rejects.toThrow(/^[^\n]*log\.file\.max_size[^\n]*$/);
    await expect(
      startTestKeyward({ log: { file: { path: "/tmp/x.log", max_files: 0 } } }),
    ).rejects.toThrow(/^[^\n]*log\.file\.max_files[^\n]*$/);
  });
});
