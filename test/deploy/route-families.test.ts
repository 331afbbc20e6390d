import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AdminFixture,
  DATA_SCOPES,
  decide,
  RESEARCHER_ISSUER,
  startAdminFixture,
} from "../helpers/admin.js";
import { keyward } from "../helpers/cli.js";
import { denial } from "../helpers/envoy-client.js";
import { AUDIENCE } from "../helpers/jwks.js";
import { SHIPPED_POLICY, startTestKeyward } from "../helpers/keyward.js";

// The shipped deploy/policy.yaml, loaded into a real keyward, decides every
// route family for every credential kind the seeds name (issue 18 point 7):
// the Developer API data plane takes Developer API keys (sk_live_) only;
// Chronicle's run routes take researchers (Auth0 token, sk_user_), agents
// (sk_agent_) and the run's own worker (sk_worker_), never an sk_live_ key or
// an admin-portal session. Every credential holds every data scope, so the
// kind is what decides.

const RUN = { experiment: "exp-1", variation: "1", run: "2" };
const RUN_PATH = "/experiments/exp-1/variations/1/runs/2";

/** Route families of the seeds, one request each. */
const ROUTES = {
  "Developer API read": ["GET", "/api/v1/sources"],
  "Developer API apply": ["POST", "/api/v1/sources/src-1/runs/r-9/apply"],
  "Chronicle run": ["GET", RUN_PATH],
  "Chronicle run sub-route": ["POST", `${RUN_PATH}/metrics`],
  "Chronicle provision": ["POST", `${RUN_PATH}/provision`],
  "Chronicle other run": ["GET", "/experiments/exp-1/variations/1/runs/3/logs"],
  "unlisted route": ["GET", "/internal/debug"],
} as const;
type Route = keyof typeof ROUTES;

const CREDENTIALS = [
  "sk_live_ (all scopes)",
  "sk_live_ (no scopes)",
  "sk_user_",
  "sk_agent_",
  "sk_worker_ of the run",
  "researcher JWT",
  "admin-portal JWT",
] as const;
type Credential = (typeof CREDENTIALS)[number];

const A = "allow";
const D = "insufficient_scope";
/** The decision the seeds call for, per credential and route family. */
const EXPECTED: Record<Credential, Record<Route, string>> = {
  "sk_live_ (all scopes)": row(A, A, D, D, D, D, D),
  "sk_live_ (no scopes)": row(D, D, D, D, D, D, D),
  sk_user_: row(D, D, A, A, A, A, D),
  sk_agent_: row(D, D, A, A, A, A, D),
  "sk_worker_ of the run": row(D, D, A, A, D, D, D),
  "researcher JWT": row(D, D, A, A, A, A, D),
  "admin-portal JWT": row(D, D, D, D, D, D, D),
};

function row(...decisions: string[]): Record<Route, string> {
  const routes = Object.keys(ROUTES) as Route[];
  return Object.fromEntries(routes.map((route, i) => [route, decisions[i]])) as Record<
    Route,
    string
  >;
}

let f: AdminFixture;
const tokens = {} as Record<Credential, string>;

beforeAll(async () => {
  f = await startAdminFixture({ policy: SHIPPED_POLICY });
  const mint = (kind: "live" | "user" | "agent" | "worker", scopes: string[]) =>
    f.kw.store.create({
      kind,
      scopes,
      tenant: "acme",
      ...(kind === "worker" && { binding: RUN }),
    }).secret;
  tokens["sk_live_ (all scopes)"] = mint("live", DATA_SCOPES);
  tokens["sk_live_ (no scopes)"] = mint("live", []);
  tokens.sk_user_ = mint("user", DATA_SCOPES);
  tokens.sk_agent_ = mint("agent", DATA_SCOPES);
  tokens["sk_worker_ of the run"] = mint("worker", DATA_SCOPES);
  tokens["researcher JWT"] = await f.researcherJwt("auth0|alice", DATA_SCOPES);
  tokens["admin-portal JWT"] = await f.adminJwt("acme", DATA_SCOPES);
});
afterAll(() => f?.close());

describe("the shipped policy admits exactly the seeds' credentials per route family", () => {
  const cases = CREDENTIALS.flatMap((credential) =>
    (Object.keys(ROUTES) as Route[]).map((route) => [credential, route] as const),
  );
  it.each(cases)("%s on %s", async (credential, route) => {
    const [method, path] = ROUTES[route];
    expect(await decide(f.check, tokens[credential], path, method)).toBe(
      EXPECTED[credential][route],
    );
  });

  it("answers a kind the rule does not admit with 403 insufficient_scope over gRPC", async () => {
    const refused = denial(
      await f.check.check({
        path: RUN_PATH,
        headers: { authorization: `Bearer ${tokens["sk_live_ (no scopes)"]}` },
      }),
    );
    expect([refused.grpcCode, refused.httpStatus, refused.body.error]).toEqual([
      7,
      "Forbidden",
      "insufficient_scope",
    ]);
    expect(refused.headers["www-authenticate"]).toBe(
      'Bearer realm="keyward", error="insufficient_scope"',
    );
    const line = f.kw.logs.records.find(
      (record) => record.decision_id === refused.body.decision_id,
    );
    expect(line).toMatchObject({ reason: "the route does not admit live credentials" });
  });

  it("keeps a rule's kinds when Envoy sets the route's scopes", async () => {
    // context_extensions.required_scopes replaces the rule's scopes, not its kinds.
    const asked = (token: string, requiredScopes: string) =>
      f.check.check({
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${token}` },
        contextExtensions: { required_scopes: requiredScopes },
      });
    expect((await asked(tokens.sk_user_, "sources:read")).status?.code).toBe(7);
    expect((await asked(tokens.sk_user_, "")).status?.code).toBe(7);
    expect((await asked(tokens["sk_live_ (all scopes)"], "sources:read")).status?.code).toBe(0);
  });
});

describe("a policy's jwt: issuers", () => {
  it("admits only the named issuer's tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-policy-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      `rules:\n  - method: GET\n    path: /reports\n    scopes: []\n    kinds: [jwt]\n    jwt: { issuers: ["${RESEARCHER_ISSUER}"] }\n`,
    );
    const g = await startAdminFixture({ policy });
    try {
      expect(await decide(g.check, await g.researcherJwt("auth0|bob"), "/reports")).toBe("allow");
      expect(await decide(g.check, await g.adminJwt("acme"), "/reports")).toBe(D);
      const key = g.kw.store.create({ kind: "agent", scopes: [] }).secret;
      expect(await decide(g.check, key, "/reports")).toBe(D);
    } finally {
      await g.close();
    }
  });

  it("refuses to start, in one line naming the field, when it names an unconfigured issuer", async () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-policy-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      "rules:\n  - method: GET\n    path: /reports\n    scopes: []\n    jwt: { issuers: [https://typo.example/] }\n",
    );
    const issuers = [{ issuer: RESEARCHER_ISSUER, audience: AUDIENCE, jwks_file: policy }];
    const started = startTestKeyward({ policy, issuers });
    await expect(started).rejects.toThrow(
      /^config: policy: policy .*: rules\.0\.jwt\.issuers\.0: https:\/\/typo\.example\/ is not a configured issuer$/,
    );
  });

  it("stops keyward serve with one line naming the field on an unknown kind", () => {
    const dir = mkdtempSync(join(tmpdir(), "keyward-policy-"));
    const policy = join(dir, "policy.yaml");
    writeFileSync(
      policy,
      "rules:\n  - method: GET\n    path: /r\n    scopes: []\n    kinds: [robot]\n",
    );
    const out = keyward(["serve"], {
      KEYWARD_DATABASE: join(dir, "keys.db"),
      KEYWARD_POLICY: policy,
      KEYWARD_CHECK_PORT: "0",
      KEYWARD_ADMIN_PORT: "0",
      KEYWARD_HTTP_PORT: "0",
    });
    expect(out.code).toBe(2);
    expect(out.stderr.trim().split("\n")).toHaveLength(1);
    expect(out.stderr).toMatch(
      /^keyward: config: policy: policy .*policy\.yaml: rules\.0\.kinds\.0: /,
    );
  });
});
