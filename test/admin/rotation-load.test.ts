import { performance } from "node:perf_hooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminFixture, decide, startAdminFixture } from "../helpers/admin.js";

describe("rotation under load", () => {
  let f: AdminFixture;
  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => f.close());

  it("never allows the old secret in a Check sent after RotateKey returned", async () => {
    const admin = f.client(f.rootToken);
    for (let round = 0; round < 3; round++) {
      const created = await admin.createKey({ kind: "live", scopes: ["sources:read"] });
      const old = created.secret;
      const results: { sentAt: number; outcome: string }[] = [];
      let rotatedAt = Number.POSITIVE_INFINITY;
      let running = true;
      // 16 concurrent callers keep presenting the old secret throughout.
      const load = Array.from({ length: 16 }, async () => {
        while (running) {
          const sentAt = performance.now();
          results.push({ sentAt, outcome: await decide(f.check, old) });
        }
      });
      // Enough traffic on both sides of the rotation, however loaded the machine is.
      await until(() => results.some((r) => r.outcome === "allow") && results.length >= 40);
      const rotated = await admin.rotateKey({ id: created.key?.id ?? "" });
      rotatedAt = performance.now();
      await until(() => results.filter((r) => r.sentAt > rotatedAt).length >= 40);
      running = false;
      await Promise.all(load);

      const before = results.filter((r) => r.sentAt < rotatedAt);
      const after = results.filter((r) => r.sentAt > rotatedAt);
      expect(before.some((r) => r.outcome === "allow")).toBe(true);
      expect(after.length).toBeGreaterThanOrEqual(40);
      expect(after.filter((r) => r.outcome !== "invalid_token")).toEqual([]);
      expect(await decide(f.check, rotated.secret)).toBe("allow");
    }
  });
});

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("not enough traffic in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
