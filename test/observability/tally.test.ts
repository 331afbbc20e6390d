import { AggregatorRegistry, Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { TalliedCounter, TalliedHistogram } from "../../src/observability/tally.js";

const BUCKETS = [0.00005, 0.0001, 0.001, 0.01, 0.25];
/** Observations on both sides of every bound, exactly on some, and past the last. */
const OBSERVATIONS = [0.00001, 0.00005, 0.00007, 0.0001, 0.0005, 0.001, 0.003, 0.25, 0.3, 7];

describe("TalliedHistogram", () => {
  it("exposes exactly what prom-client's own Histogram exposes for the same observations", async () => {
    const tallied = new Registry();
    const reference = new Registry();
    const mine = new TalliedHistogram(tallied, {
      name: "h_seconds",
      help: "A histogram.",
      label: "transport",
      buckets: BUCKETS,
    });
    const theirs = new Histogram({
      name: "h_seconds",
      help: "A histogram.",
      labelNames: ["transport"],
      buckets: BUCKETS,
      registers: [reference],
    });
    for (const [i, value] of OBSERVATIONS.entries()) {
      const transport = i % 3 === 0 ? "http" : "grpc";
      mine.record(transport, value);
      theirs.observe({ transport }, value);
    }
    const text = await tallied.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain('h_seconds_bucket{le="+Inf",transport="grpc"} 6');
  });

  it("adds up across Check workers as prom-client's Histogram does", async () => {
    const workers = [new Registry(), new Registry()];
    const references = [new Registry(), new Registry()];
    workers.forEach((registry, w) => {
      const mine = new TalliedHistogram(registry, {
        name: "h_seconds",
        help: "h",
        label: "transport",
        buckets: BUCKETS,
      });
      const theirs = new Histogram({
        name: "h_seconds",
        help: "h",
        labelNames: ["transport"],
        buckets: BUCKETS,
        registers: [references[w] as Registry],
      });
      for (const value of OBSERVATIONS.slice(w * 4)) {
        mine.record("grpc", value);
        theirs.observe({ transport: "grpc" }, value);
      }
    });
    const merged = async (registries: Registry[]) =>
      AggregatorRegistry.aggregate(
        await Promise.all(registries.map((registry) => registry.getMetricsAsJSON())),
      ).metrics();
    expect(await merged(workers)).toBe(await merged(references));
  });
});

describe("TalliedCounter", () => {
  it("adds what each series counted since the previous scrape, never going down", async () => {
    const registry = new Registry();
    const reference = new Registry();
    const counter = new TalliedCounter(registry, "c_total", "A counter.", ["outcome", "code"]);
    const theirs = new Counter({
      name: "c_total",
      help: "A counter.",
      labelNames: ["outcome", "code"],
      registers: [reference],
    });
    const count = (outcome: string, code: string) => {
      const series =
        counter.find(outcome, code, "") ?? counter.add(outcome, code, "", { outcome, code });
      series.count += 1;
      theirs.inc({ outcome, code });
    };
    for (let i = 0; i < 5; i++) count("allow", "none");
    count("deny", "invalid_token");
    expect(await registry.metrics()).toBe(await reference.metrics());
    // A second scrape with nothing new must not count anything again.
    expect(await registry.metrics()).toBe(await reference.metrics());
    for (let i = 0; i < 3; i++) count("deny", "invalid_token");
    count("deny", "key_revoked");
    const text = await registry.metrics();
    expect(text).toBe(await reference.metrics());
    expect(text).toContain('c_total{outcome="deny",code="invalid_token"} 4');
  });

  it("keeps series apart whose key parts would join into the same string", async () => {
    const registry = new Registry();
    const counter = new TalliedCounter(registry, "c_total", "c", ["a", "b"]);
    counter.add("x|y", "z", "", { a: "x|y", b: "z" }).count += 1;
    counter.add("x", "y|z", "", { a: "x", b: "y|z" }).count += 2;
    expect(counter.find("x", "y|z", "")?.count).toBe(2);
    expect(counter.find("x|y", "z", "")?.count).toBe(1);
    const text = await registry.metrics();
    expect(text).toContain('c_total{a="x|y",b="z"} 1');
    expect(text).toContain('c_total{a="x",b="y|z"} 2');
  });
});
