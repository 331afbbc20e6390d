import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdminFixture,
  decide,
  keyOf,
  refusal,
  rest,
  startAdminFixture,
} from "../helpers/admin.js";
import { denial } from "../helpers/envoy-client.js";

/** Three requests an hour: a window no test run outlasts, so counts are exact. */
const HOURLY = { requests: 3, perSeconds: 3600, burst: 0 };

describe("native per-key rate limits", () => {
  let f: AdminFixture;

  beforeAll(async () => {
    f = await startAdminFixture();
  });
  afterAll(async () => {
    await f.close();
  });

  describe("happy path", () => {
    it("allows a key its limit, then denies 429 rate_limited with Retry-After and RateLimit fields", async () => {
      const created = await f
        .client(f.rootToken)
        .createKey({ kind: "live", scopes: ["sources:read"], rateLimit: HOURLY });
      expect(keyOf(created).rateLimit).toMatchObject(HOURLY);
      for (let i = 0; i < 3; i++) expect(await decide(f.check, created.secret)).toBe("allow");
      const response = await f.check.check({
        method: "GET",
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${created.secret}` },
      });
      const denied = denial(response);
      expect([denied.grpcCode, denied.httpStatus, denied.body.error]).toEqual([
        8,
        "TooManyRequests",
        "rate_limited",
      ]);
      const wait = Number(denied.headers["retry-after"]);
      expect(wait).toBeGreaterThan(1000);
      expect(wait).toBeLessThanOrEqual(1200);
      expect(denied.headers["ratelimit-policy"]).toBe('"key";q=3;w=3600');
      expect(denied.headers.ratelimit).toBe(`"key";r=0;t=${wait}`);
      expect(denied.headers["www-authenticate"]).toBeUndefined();

      // /authz shares the process's bucket and says the same.
      const authz = await fetch(`http://127.0.0.1:${f.kw.ports.http}/authz`, {
        headers: {
          authorization: `Bearer ${created.secret}`,
          "x-original-method": "GET",
          "x-original-uri": "/api/v1/sources",
        },
      });
      expect(authz.status).toBe(429);
      expect(authz.headers.get("retry-after")).toMatch(/^\d+$/);
      expect(((await authz.json()) as { error: string }).error).toBe("rate_limited");

      const metrics = await (await fetch(`http://127.0.0.1:${f.kw.ports.http}/metrics`)).text();
      expect(metrics).toMatch(/keyward_decisions_total\{[^}]*code="rate_limited"[^}]*\} [1-9]/);
    });

    it("takes no token for a request denied anyway, and leaves keys without a limit alone", async () => {
      const root = f.client(f.rootToken);
      const limited = await root.createKey({
        kind: "live",
        scopes: ["sources:read"],
        rateLimit: HOURLY,
      });
      for (let i = 0; i < 5; i++) {
        expect(await decide(f.check, limited.secret, "/api/v1/sources", "POST")).toBe(
          "insufficient_scope",
        );
      }
      for (let i = 0; i < 3; i++) expect(await decide(f.check, limited.secret)).toBe("allow");
      const free = await root.createKey({ kind: "live", scopes: ["sources:read"] });
      expect(keyOf(free).rateLimit).toBeUndefined();
      for (let i = 0; i < 50; i++) expect(await decide(f.check, free.secret)).toBe("allow");
    });

    it("lets an administrator lift or change a limit with UpdateKey (REST PATCH)", async () => {
      const created = await f.client(f.rootToken).createKey({
        kind: "live",
        scopes: ["sources:read"],
        rateLimit: { ...HOURLY, requests: 1 },
      });
      expect(await decide(f.check, created.secret)).toBe("allow");
      expect(await decide(f.check, created.secret)).toBe("rate_limited");
      const lifted = await rest(f, "PATCH", `/v1/admin/keys/${keyOf(created).id}`, {
        token: f.rootToken,
        body: { rateLimit: null },
      });
      expect(lifted.status).toBe(200);
      expect(lifted.body.key).toMatchObject({ rateLimit: null });
      expect(await decide(f.check, created.secret)).toBe("allow");
    });
  });

  describe("error path", () => {
    it("refuses a limit out of bounds, naming rateLimit", async () => {
      const root = f.client(f.rootToken);
      const error = await refusal(
        root.createKey({
          kind: "live",
          scopes: ["sources:read"],
          rateLimit: { requests: 10, perSeconds: 86_401, burst: 0 },
        }),
      );
      expect(error.code).toBe(Code.InvalidArgument);
      expect(error.rawMessage).toMatch(/^rateLimit: /);
      for (const rateLimit of [
        { requests: 0, perSeconds: 1 },
        { requests: 1 },
        { requests: 1, perSeconds: 1, every: 2 },
      ]) {
        const answer = await rest(f, "POST", "/v1/admin/keys", {
          token: f.rootToken,
          body: { scopes: ["sources:read"], rateLimit },
        });
        expect(answer.status, JSON.stringify(rateLimit)).toBe(400);
      }
    });
  });

  describe("security", () => {
    it("never allows more than the limit, even to concurrent requests", async () => {
      const created = await f
        .client(f.rootToken)
        .createKey({ kind: "live", scopes: ["sources:read"], rateLimit: HOURLY });
      const answers = await Promise.all(
        Array.from({ length: 30 }, () => decide(f.check, created.secret)),
      );
      expect(answers.filter((a) => a === "allow")).toHaveLength(3);
      expect(answers.filter((a) => a === "rate_limited")).toHaveLength(27);
    });

    it("does not let a researcher lift or raise its key's limit, only tighten it", async () => {
      const ada = f.client(await f.researcherJwt("auth0|ada", ["sources:read"]));
      const created = await ada.createKey({ scopes: ["sources:read"], rateLimit: HOURLY });
      const id = keyOf(created).id;
      for (const rateLimit of [
        { requests: 0, perSeconds: 0, burst: 0 },
        { requests: 4, perSeconds: 3600, burst: 0 },
        { requests: 3, perSeconds: 3600, burst: 10 },
        { requests: 3, perSeconds: 60, burst: 0 },
      ]) {
        const error = await refusal(ada.updateKey({ id, rateLimit }));
        expect(error.code, JSON.stringify(rateLimit)).toBe(Code.PermissionDenied);
        expect(error.rawMessage).toMatch(/may lift or raise/);
      }
      for (let i = 0; i < 3; i++) expect(await decide(f.check, created.secret)).toBe("allow");
      // Tightening to 2 an hour leaves it spent: a change never refills the bucket.
      const tighter = keyOf(
        await ada.updateKey({ id, rateLimit: { requests: 2, perSeconds: 3600, burst: 0 } }),
      );
      expect(tighter.rateLimit).toMatchObject({ requests: 2 });
      expect(await decide(f.check, created.secret)).toBe("rate_limited");
    });
  });
});
