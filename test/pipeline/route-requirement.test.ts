import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRouteRequirements,
  ROUTE_REQUIREMENTS_MAX,
} from "../../src/pipeline/route-requirement.js";
import { denial, EnvoyCheckClient } from "../helpers/envoy-client.js";
import { startTestKeyward, type TestKeyward } from "../helpers/keyward.js";

describe("per-route required_scopes, parsed once per distinct string", () => {
  it("parses whitespace-separated scopes, empty meaning any credential", () => {
    const parse = createRouteRequirements();
    expect(parse(" sources:read \t runs:apply\n")).toEqual({
      type: "scopes",
      scopes: ["sources:read", "runs:apply"],
    });
    expect(parse("")).toEqual({ type: "scopes", scopes: [] });
    expect(parse("   ")).toEqual({ type: "scopes", scopes: [] });
  });

  it("answers a string it has seen with the same parse, and keeps no more than its cap", () => {
    const parse = createRouteRequirements(3);
    const kept = ["a", "a b", "c"].map((s) => parse(s));
    // Seen again: the very same object, not a new parse.
    expect(["a", "a b", "c"].map((s) => parse(s))).toEqual(kept);
    ["a", "a b", "c"].forEach((s, i) => {
      expect(parse(s)).toBe(kept[i]);
    });
    // Past the cap: still the right requirement, parsed afresh each time (not stored).
    const first = parse("d e");
    const second = parse("d e");
    expect(first).toEqual({ type: "scopes", scopes: ["d", "e"] });
    expect(second).toEqual(first);
    expect(second).not.toBe(first);
    expect(parse("a")).toBe(kept[0]);
  });

  it("hands out requirements no caller can change for the next request", () => {
    const parse = createRouteRequirements();
    const requirement = parse("x y");
    if (requirement.type !== "scopes") throw new Error("expected scopes");
    expect(() => (requirement.scopes as string[]).push("z")).toThrow(TypeError);
    expect(parse("x y")).toEqual({ type: "scopes", scopes: ["x", "y"] });
  });
});

describe("per-route required_scopes over ext_authz, beyond the parse cache's cap", () => {
  let kw: TestKeyward;
  let client: EnvoyCheckClient;
  beforeAll(async () => {
    kw = await startTestKeyward();
    client = new EnvoyCheckClient(kw.ports.check);
  });
  afterAll(async () => {
    client.close();
    await kw.close();
  });

  it("decides every distinct string right, before and after the cache is full", async () => {
    const { secret } = kw.store.create({ kind: "live", scopes: ["sources:read", "runs:read"] });
    const headers = { authorization: `Bearer ${secret}` };
    // Distinct strings by their spacing: half need only held scopes, half one more.
    const routes = Array.from({ length: ROUTE_REQUIREMENTS_MAX + 200 }, (_, i) => {
      const pad = " ".repeat((i >> 1) + 1);
      return i % 2 === 0
        ? { scopes: `sources:read${pad}runs:read`, allow: true }
        : { scopes: `sources:read${pad}runs:apply`, allow: false };
    });
    const decide = async ({ scopes }: { scopes: string }) => {
      const response = await client.check({
        path: "/not/in/the/policy",
        headers,
        contextExtensions: { required_scopes: scopes },
      });
      return response.status?.code === 0 ? "allow" : denial(response).body.error;
    };
    // Twice over: the second pass meets both cached strings and ones past the cap.
    for (let pass = 0; pass < 2; pass++) {
      for (let i = 0; i < routes.length; i += 50) {
        const batch = routes.slice(i, i + 50);
        const got = await Promise.all(batch.map(decide));
        expect(got).toEqual(batch.map((r) => (r.allow ? "allow" : "insufficient_scope")));
      }
    }
  });
});
