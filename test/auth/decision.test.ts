import { describe, expect, it } from "vitest";
import { type Deny, type DenyCode, deny, denyHeaders, OUTCOMES } from "../../src/auth/decision.js";
import { DENY_CODES } from "../helpers/hardening.js";

describe("the outcome table", () => {
  it("maps the lifecycle codes to DESIGN's statuses and gRPC codes", () => {
    expect(OUTCOMES.key_disabled).toMatchObject({ httpStatus: 401, grpcCode: 16 });
    expect(OUTCOMES.ip_not_allowed).toMatchObject({ httpStatus: 403, grpcCode: 7 });
    expect(OUTCOMES.rate_limited).toMatchObject({ httpStatus: 429, grpcCode: 8 });
    // The table and the test helpers' copy of DESIGN's table agree code for code.
    const table = Object.fromEntries(
      Object.entries(OUTCOMES).map(([code, o]) => [code, [o.grpcCode, o.httpStatus]]),
    );
    expect(table).toEqual(DENY_CODES);
  });

  it("challenges with Bearer where RFC 6750 applies, and not at the wrong address or over the rate", () => {
    const challenge = (code: DenyCode) =>
      denyHeaders(deny(code)).find(([name]) => name === "www-authenticate")?.[1];
    expect(challenge("key_disabled")).toBe('Bearer realm="keyward", error="key_disabled"');
    expect(challenge("key_revoked")).toBe('Bearer realm="keyward", error="key_revoked"');
    expect(challenge("missing_credential")).toBe('Bearer realm="keyward"');
    expect(challenge("ip_not_allowed")).toBeUndefined();
    expect(challenge("rate_limited")).toBeUndefined();
  });

  it("gives a rate_limited deny retry-after and the IETF RateLimit fields", () => {
    const limited: Deny = deny("rate_limited", {
      limit: { requests: 100, perSeconds: 60, retryAfterSeconds: 2 },
    });
    expect(denyHeaders(limited)).toEqual([
      ["retry-after", "2"],
      ["ratelimit-policy", '"key";q=100;w=60'],
      ["ratelimit", '"key";r=0;t=2'],
    ]);
    // Only rate_limited reports a limit, whatever else a deny carries.
    expect(
      denyHeaders(deny("ip_not_allowed", { limit: limited.limit as NonNullable<Deny["limit"]> })),
    ).toEqual([]);
  });
});
