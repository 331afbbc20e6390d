// The bench's plan: run lengths, load shape, targets, the request bodies and
// the scenarios measured in the main rounds, and the machine's description.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { checkRequestBody, JWT_REQUEST } from "./grpc-check.mjs";
import { ROOT, RUN_DIR, SHIPPED_NODE_FLAGS, SHIPPED_NODE_OPTIONS } from "./servers.mjs";

export const QUICK = process.env.BENCH_QUICK === "1";
export const PROTO_BIN = process.env.BENCH_PROTO_BIN;
/** Node flags for the prototype, after the shipped ones (e.g. `--heap-growing-percent=0` undoes one). */
export const PROTO_NODE_ARGS = (process.env.BENCH_PROTO_NODE_ARGS ?? "")
  .split(/\s+/)
  .filter(Boolean);
export const WITH_PROTO = PROTO_BIN !== undefined || PROTO_NODE_ARGS.length > 0;
export const PLAN = QUICK
  ? { durationS: 1, warmupS: 1, pairs: 1, scaleKeys: 100_000, jwtPool: 512 }
  : { durationS: 5, warmupS: 1, pairs: 5, scaleKeys: 1_000_000, jwtPool: 2048 };
/** Keys revoked one by one on a primary, each timed to its replica's Check. */
export const REVOCATIONS = QUICK ? 20 : 100;
/** Every saturated run: 4 connections × 16 concurrent streams, as in TOOLING.md. */
export const LOAD = { connections: 4, streams: 16 };

/** Judged by CPU cost per Check against the no-op baseline in the same rounds (issue 24). */
export const TARGETS = {
  keyAllowRatio: 0.95,
  denyRatio: 0.9,
  jwtCachedRatio: 0.95,
  p99HalfRateUs: 2000,
  scaleDrift: 0.1,
  rssMb: 200,
  startupMs: 2000,
};

/** The per-route requirement the route scenarios send, as Envoy's route config would. */
export const ROUTE_SCOPES = "sources:read";

/** A request body written to RUN_DIR for h2load, with the decision keyward must give. */
export function body(name, token, expect, request) {
  const bytes = checkRequestBody(token, request);
  const file = join(RUN_DIR, `${name}.bin`);
  writeFileSync(file, bytes);
  return { name, bytes, file, expect };
}

/** Distinct bodies, one per token, in one file for the Node load client. */
export function pool(name, tokens, expect, request) {
  const frames = tokens.map((token) => checkRequestBody(token, request));
  const file = join(RUN_DIR, `${name}.pool`);
  writeFileSync(file, Buffer.concat(frames));
  return { name, file, expect, size: frames.length, first: { name, bytes: frames[0] } };
}

/** The key with its secret part replaced. */
export function withSecret(key, secret) {
  return `${key.slice(0, key.lastIndexOf("_") + 1)}${secret}`;
}

/** What this run ran on, for RESULTS.md. */
export function machine() {
  const cpu = cpus()[0]?.model ?? "unknown";
  const run = (command, args) => {
    try {
      return execFileSync(command, args, { cwd: ROOT, encoding: "utf8" }).trim();
    } catch {
      return "unknown";
    }
  };
  const version = (pkg) =>
    JSON.parse(readFileSync(join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version;
  const dirty = run("git", ["status", "--porcelain"]) !== "";
  return {
    date: new Date().toISOString(),
    cpu: `${cpu}, ${cpus().length} cores`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: run("uname", ["-sr"]),
    node: process.version,
    h2load: run("h2load", ["--version"]),
    commit: `${run("git", ["rev-parse", "--short", "HEAD"])}${dirty ? " + uncommitted changes" : ""}`,
    packages: ["@grpc/grpc-js", "@bufbuild/protobuf", "better-sqlite3", "jose", "pino"]
      .map((pkg) => `${pkg} ${version(pkg)}`)
      .join(", "),
    load: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
    nodeOptions: SHIPPED_NODE_OPTIONS,
    nodeFlags: SHIPPED_NODE_FLAGS.join(" "),
  };
}

/** The request bodies of the run, from the 10 k-key sample, the big one's and the issuer. */
export function buildBodies(small, big, issuer) {
  const perRoute = { contextExtensions: { required_scopes: ROUTE_SCOPES } };
  return {
    keyAllow: body("key_allow", small.sample[0], "allow"),
    keyAllowRoute: body("key_allow_route", small.sample[0], "allow", perRoute),
    wrongSecret: body("wrong_secret", withSecret(small.sample[1], "0".repeat(48)), "invalid_token"),
    unknownId: body("unknown_id", `sk_live_${"f".repeat(15)}0_${"1".repeat(48)}`, "invalid_token"),
    // A researcher's JWT on a Chronicle run route: the shipped policy admits JWTs there only.
    jwtCached: body("jwt_cached", issuer.token(0), "allow", JWT_REQUEST),
    scopeDenied: body("scope_denied", small.sample[2], "insufficient_scope", {
      method: "POST",
      path: "/api/v1/sources",
    }),
    bigKeyAllow: body("big_key_allow", big.sample[0], "allow"),
  };
}

/** One body on the standard load. */
export const single = (name, label, b, target) => ({
  name,
  label,
  target,
  parts: [{ body: b, ...LOAD }],
});

/** The scenarios of the main rounds, each run against every main server. */
export function buildScenarios(bodies) {
  return [
    single("key_allow", "valid key, allow", bodies.keyAllow, TARGETS.keyAllowRatio),
    single(
      "key_allow_route",
      `valid key, allow; requirement from Envoy's per-route \`context_extensions.required_scopes: "${ROUTE_SCOPES}"\``,
      bodies.keyAllowRoute,
      TARGETS.keyAllowRatio,
    ),
    single(
      "wrong_secret",
      "wrong secret, deny invalid_token",
      bodies.wrongSecret,
      TARGETS.denyRatio,
    ),
    single("unknown_id", "unknown key id, deny invalid_token", bodies.unknownId, TARGETS.denyRatio),
    single(
      "jwt_cached",
      "JWT allow (cached verification)",
      bodies.jwtCached,
      TARGETS.jwtCachedRatio,
    ),
    {
      name: "mixed",
      label:
        "mixed: 4 concurrent h2load (key allow 2×16 streams, JWT cached 1×16, wrong secret 1×8, scope deny 1×8)",
      target: undefined,
      parts: [
        { body: bodies.keyAllow, connections: 2, streams: 16 },
        { body: bodies.jwtCached, connections: 1, streams: 16 },
        { body: bodies.wrongSecret, connections: 1, streams: 8 },
        { body: bodies.scopeDenied, connections: 1, streams: 8 },
      ],
    },
  ];
}
