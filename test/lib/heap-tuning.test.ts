import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  type HeapTuning,
  missingRoleFlags,
  NODE_FLAGS,
  ROLE_NODE_OPTIONS,
  tuneHeap,
  tuneHeapForRole,
} from "../../src/lib/heap-tuning.js";
import { BIN, serve } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "keyward-heap-"));
const PORTS = { KEYWARD_CHECK_PORT: "0", KEYWARD_ADMIN_PORT: "0", KEYWARD_HTTP_PORT: "0" };
const env = { ...PORTS, KEYWARD_DATABASE: join(dir, "keys.db") };
const CAP = "--max-old-space-size=96";

/** The `heap` field of a started line. */
function heapOf(stderr: string): HeapTuning {
  const line = stderr.split("\n").find((l) => l.includes('"keyward started"'));
  return JSON.parse(line ?? "{}").heap;
}

describe("heap tuning, however keyward is started", () => {
  const stops: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const stop of stops) await stop();
  });

  /** An idle `keyward serve` started by `command` on its own database file, stopped after all. */
  const startWith = async (command: string[], database: string) => {
    const server = await serve(
      [],
      { ...PORTS, KEYWARD_DATABASE: join(dir, database) },
      undefined,
      command,
    );
    stops.push(() => server.stop());
    return server;
  };

  it("`keyward serve` under the image's heap cap sets the growing percent itself", async () => {
    const server = await serve([], { ...env, NODE_OPTIONS: CAP });
    stops.push(() => server.stop());
    const heap = heapOf(server.stderr());
    expect(heap).toMatchObject({ growingPercent: 100, by: "keyward" });
    expect(heap.limitMb).toBeLessThan(200);
  });

  it("sets it without a cap too, and a growing percent on node's command line wins", async () => {
    const big = await serve([], { ...env, NODE_OPTIONS: "--max-old-space-size=4096" });
    stops.push(() => big.stop());
    expect(heapOf(big.stderr())).toMatchObject({ growingPercent: 100, by: "keyward" });
    expect(heapOf(big.stderr()).limitMb).toBeGreaterThan(4000);

    // Node refuses this flag in NODE_OPTIONS, so it can only come before the script.
    const given = await serve([], { ...env, NODE_OPTIONS: CAP }, undefined, [
      process.execPath,
      "--heap-growing-percent=50",
      BIN,
    ]);
    stops.push(() => given.stop());
    expect(heapOf(given.stderr())).toMatchObject({ growingPercent: 50, by: "command line" });
  });

  it("runs without V8's memory reducer from the keyward command; started plainly, it says so", async () => {
    // The `keyward` command itself (its #! line passes NODE_FLAGS) and
    // `node bin/keyward.js serve` typed by hand.
    const [command, plain] = await Promise.all([
      startWith([BIN], "command.db"),
      startWith([process.execPath, BIN], "plain.db"),
    ]);
    expect(heapOf(command.stderr())).toMatchObject({ memoryReducer: false });
    expect(heapOf(plain.stderr())).toMatchObject({ memoryReducer: true });
    const warned = (stderr: string) =>
      stderr.split("\n").some((l) => l.includes('"level":40') && l.includes(NODE_FLAGS));
    expect(warned(plain.stderr())).toBe(true);
    expect(warned(command.stderr())).toBe(false);
  });

  it("with the flag, an idle keyward is never put through V8's reducing collections", async () => {
    // V8's memory reducer runs "Mark-Compact (reduce)" collections ~8 s into
    // an idle process's life; --trace-gc names them. Two idle keywards
    // started together, one with NODE_FLAGS: once the other has been
    // reduced, and 3 s more, the flagged one must not have been.
    const [flagged, plain] = await Promise.all([
      startWith([process.execPath, NODE_FLAGS, "--trace-gc", BIN], "flagged.db"),
      startWith([process.execPath, "--trace-gc", BIN], "unflagged.db"),
    ]);
    const reduced = (trace: string) => trace.includes("(reduce)");
    const deadline = Date.now() + 90_000;
    while (!reduced(plain.stdout()) && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 200));
    }
    expect(reduced(plain.stdout()), "the unflagged keyward was never reduced").toBe(true);
    await new Promise((done) => setTimeout(done, 3_000));
    expect(flagged.stdout()).toContain("Mark-Compact");
    expect(reduced(flagged.stdout())).toBe(false);
  }, 120_000);

  it("reads the growing percent from node's arguments, and then leaves V8 as it is", () => {
    expect(tuneHeap(["--heap_growing_percent=30"], 100 * 1024 ** 2)).toMatchObject({
      growingPercent: 30,
      by: "command line",
    });
  });

  it("reports whether V8's memory reducer runs: the last of its flags on node's command line", () => {
    expect(tuneHeap([], 100 * 1024 ** 2, "")).toMatchObject({ memoryReducer: true });
    expect(tuneHeap([NODE_FLAGS], 100 * 1024 ** 2, "")).toMatchObject({ memoryReducer: false });
    expect(tuneHeap(["--no_memory_reducer"], 100 * 1024 ** 2, "")).toMatchObject({
      memoryReducer: false,
    });
    expect(tuneHeap([NODE_FLAGS, "--memory-reducer"], 100 * 1024 ** 2, "")).toMatchObject({
      memoryReducer: true,
    });
  });

  it("reports the semi-space size node was given, on its command line or in NODE_OPTIONS", () => {
    expect(tuneHeap([], 100 * 1024 ** 2, "")).not.toHaveProperty("semiSpaceMb");
    expect(
      tuneHeap([], 100 * 1024 ** 2, "--max-old-space-size=96 --max-semi-space-size=1"),
    ).toMatchObject({ semiSpaceMb: 1 });
    expect(tuneHeap(["--max_semi_space_size=2"], 100 * 1024 ** 2, "")).toMatchObject({
      semiSpaceMb: 2,
    });
  });

  it("lets a replica's heap grow less once its role is known, unless node's command line said", () => {
    tuneHeap([], 100 * 1024 ** 2, "");
    expect(tuneHeapForRole("replica")).toMatchObject({ growingPercent: 50, by: "keyward" });
    expect(tuneHeapForRole("primary")).toMatchObject({ growingPercent: 100, by: "keyward" });
    tuneHeap(["--heap-growing-percent=30"], 100 * 1024 ** 2, "");
    expect(tuneHeapForRole("replica")).toMatchObject({ growingPercent: 30, by: "command line" });
  });

  it("names the role's V8 flags node was started without", () => {
    expect(missingRoleFlags("replica", [], "")).toEqual([
      "--max-old-space-size=96",
      "--max-semi-space-size=1",
    ]);
    expect(missingRoleFlags("replica", [], ROLE_NODE_OPTIONS.replica)).toEqual([]);
    // A value of the user's own counts as given; so does node's command line.
    expect(
      missingRoleFlags("replica", ["--max_semi_space_size=4"], "--max-old-space-size=200"),
    ).toEqual([]);
    expect(missingRoleFlags("primary", [], "--max-semi-space-size=1")).toEqual([
      "--max-old-space-size=96",
    ]);
  });

  it("takes effect in V8: under the cap the same allocations run fewer full collections", () => {
    // A fixed allocation pattern (a live set, plus objects that live long
    // enough to be promoted and then die) counted by V8's own GC trace: with
    // the factor at 2 the old generation may grow further between
    // mark-compacts than V8's own ≤ 1.3 under a 96 MB cap.
    const script = join(dir, "churn.mjs");
    const tuning = pathToFileURL(resolve("dist/lib/heap-tuning.js")).href;
    writeFileSync(
      script,
      `if (process.argv[2] === "tuned") (await import(${JSON.stringify(tuning)})).tuneHeap();
const live = [];
for (let i = 0; i < 200_000; i++) live.push({ i, s: "x" + i });
const ring = new Array(120_000);
for (let i = 0; i < 12_000_000; i++) ring[i % ring.length] = { a: i, b: [i, i + 1], c: "y" + i };
console.log(live.length + ring.length);
`,
    );
    const markCompacts = (mode: string) => {
      const run = spawnSync(process.execPath, [CAP, "--trace-gc", script, mode], {
        encoding: "utf8",
        timeout: 120_000,
      });
      expect(run.status, run.stderr).toBe(0);
      return run.stdout.split("\n").filter((line) => line.includes("Mark-Compact")).length;
    };
    const untuned = markCompacts("untuned");
    const tuned = markCompacts("tuned");
    expect(untuned).toBeGreaterThan(10);
    expect(tuned).toBeLessThan(untuned * 0.85);
  });
});
