// Timing side channel: does keyward answer an unknown key id and a known id
// with a wrong secret in distinguishable time? DESIGN promises it does not
// ("neither the answer nor its timing tells whether the id or the secret was
// wrong"). Both requests miss the decision cache (it only holds verdicts whose
// secret matched), so each goes to SQLite, SHA-256 and timingSafeEqual.
//
//   npm run build && node bench/timing.mjs [--samples 20000] [--keys 10000] [--out bench/TIMING.md]
//
// Two measurements, each over interleaved samples in random order:
//   1. KeyVerifier.verify called directly (least noise: what the code does);
//   2. Check over gRPC against a real keyward (what an attacker sees on loopback).
// Reported per measurement: medians, 10 % trimmed means with Yuen's Welch-type
// t test, and the two-sample Kolmogorov–Smirnov D with its p-value.
//
// The statistics are exported for test/hardening/timing.test.ts; the
// benchmark runs only when this file is executed.

import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// --- statistics ---------------------------------------------------------------

/** Median of a sample (copied and sorted). */
export function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Two-sample Kolmogorov–Smirnov test: D = sup |F1 − F2| and the asymptotic
 * p-value Q_KS((√ne + 0.12 + 0.11/√ne)·D), ne = n1·n2/(n1+n2)
 * (Numerical Recipes, 3rd ed., §14.3.3).
 */
export function ksTest(a, b) {
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i], y[j]);
    while (i < x.length && x[i] <= v) i++;
    while (j < y.length && y[j] <= v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  const ne = Math.sqrt((x.length * y.length) / (x.length + y.length));
  const lambda = (ne + 0.12 + 0.11 / ne) * d;
  return { d, p: kolmogorovQ(lambda) };
}

function kolmogorovQ(lambda) {
  if (lambda < 1e-3) return 1;
  let sum = 0;
  let sign = 1;
  for (let k = 1; k <= 200; k++) {
    const term = sign * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
    sign = -sign;
  }
  return Math.min(1, Math.max(0, 2 * sum));
}

/**
 * Yuen's test: Welch's t on γ-trimmed means with winsorized variances
 * (robust to the long right tail of latencies: GC pauses, preemption).
 */
export function yuenWelch(a, b, gamma = 0.1) {
  const part = (values) => {
    const s = Float64Array.from(values).sort();
    const n = s.length;
    const g = Math.floor(gamma * n);
    const h = n - 2 * g;
    let trimmed = 0;
    for (let i = g; i < n - g; i++) trimmed += s[i];
    const mean = trimmed / h;
    let wsum = 0;
    const lo = s[g];
    const hi = s[n - g - 1];
    for (const v of s) wsum += Math.min(hi, Math.max(lo, v));
    const wmean = wsum / n;
    let wss = 0;
    for (const v of s) wss += (Math.min(hi, Math.max(lo, v)) - wmean) ** 2;
    const d = wss / (h * (h - 1)); // (n-1)·s²_w / (h(h-1))
    return { mean, d, h };
  };
  const x = part(a);
  const y = part(b);
  const t = (x.mean - y.mean) / Math.sqrt(x.d + y.d);
  const df = (x.d + y.d) ** 2 / (x.d ** 2 / (x.h - 1) + y.d ** 2 / (y.h - 1));
  return { meanA: x.mean, meanB: y.mean, t, df, p: studentTwoSided(t, df) };
}

/** Two-sided p-value of Student's t: I_{df/(df+t²)}(df/2, 1/2). */
function studentTwoSided(t, df) {
  if (!Number.isFinite(t)) return 0;
  return incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

function logGamma(z) {
  const c = [
    76.18009172947146, -86.50532032941678, 24.01409824083091, -1.231739572450155,
    0.1208650973866179e-2, -0.5395239384953e-5,
  ];
  let x = z;
  let y = z;
  let tmp = x + 5.5;
  tmp -= (x + 0.5) * Math.log(tmp);
  let ser = 1.000000000190015;
  for (const coefficient of c) ser += coefficient / ++y;
  x = -tmp + Math.log((2.5066282746310007 * ser) / z);
  return x;
}

function incompleteBeta(x, a, b) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(
    logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log(1 - x),
  );
  return x < (a + 1) / (a + b + 2)
    ? (front * betaFraction(x, a, b)) / a
    : 1 - (front * betaFraction(1 - x, b, a)) / b;
}

function betaFraction(x, a, b) {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 300; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-12) break;
  }
  return h;
}

/** Everything the report says about two samples (times in ns). */
export function compare(unknownId, wrongSecret) {
  const ks = ksTest(unknownId, wrongSecret);
  const yuen = yuenWelch(unknownId, wrongSecret);
  const medianUnknown = median(unknownId);
  const medianWrong = median(wrongSecret);
  return {
    n: [unknownId.length, wrongSecret.length],
    medianUnknown,
    medianWrong,
    medianRatio: medianWrong / medianUnknown,
    trimmedUnknown: yuen.meanA,
    trimmedWrong: yuen.meanB,
    t: yuen.t,
    df: yuen.df,
    tP: yuen.p,
    ksD: ks.d,
    ksP: ks.p,
  };
}

/**
 * "indistinguishable" unless the Kolmogorov–Smirnov test rejects at `alpha`
 * (default 0.001); the effect size is in the report either way.
 */
export function verdict(result, alpha = 0.001) {
  if (result.ksP >= alpha) return "indistinguishable";
  const faster = result.medianWrong > result.medianUnknown ? "unknown id" : "wrong secret";
  const gap = Math.abs(result.medianWrong - result.medianUnknown);
  return `DISTINGUISHABLE: the ${faster} answers faster (median Δ ${(gap / 1000).toFixed(2)} µs, ${(
    (100 * gap) / Math.min(result.medianWrong, result.medianUnknown)
  ).toFixed(0)} %)`;
}

// --- sampling -----------------------------------------------------------------

const hex = (bytes) => randomBytes(bytes).toString("hex");

/** A fresh token for a key id that does not exist. */
export function unknownIdToken() {
  return `sk_live_${hex(8)}_${hex(24)}`;
}

/** A fresh token naming an existing key id with a wrong secret. */
export function wrongSecretToken(lookups) {
  return `${lookups[Math.floor(Math.random() * lookups.length)]}_${hex(24)}`;
}

/** Shuffled labels: `n` of each kind, interleaved at random. */
export function interleaved(n) {
  const order = new Uint8Array(2 * n);
  order.fill(1, n);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * Times `verify(parsed, token)` for `n` unknown-id and `n` wrong-secret
 * tokens, interleaved, after a warm-up; tokens are built outside the timed
 * region. Returns [unknownId, wrongSecret] in nanoseconds.
 */
export function sampleVerify({ verify, parseKey, lookups, n, warmup = 2_000 }) {
  const run = (count, record) => {
    const order = interleaved(count);
    const out = [[], []];
    for (const kind of order) {
      const token = kind === 0 ? unknownIdToken() : wrongSecretToken(lookups);
      const parsed = parseKey(token);
      const started = process.hrtime.bigint();
      const result = verify(parsed, token);
      const elapsed = process.hrtime.bigint() - started;
      if (result.ok) throw new Error("a random secret verified");
      if (record) out[kind].push(Number(elapsed));
    }
    return out;
  };
  run(warmup, false);
  return run(n, true);
}

// --- the benchmark ------------------------------------------------------------

function parseArgs(argv) {
  const options = { samples: 20_000, keys: 10_000, out: "bench/TIMING.md" };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, "");
    const value = argv[i + 1];
    if (!(name in options) || value === undefined) {
      console.error(`usage: node bench/timing.mjs [--samples N] [--keys N] [--out FILE]`);
      process.exit(2);
    }
    options[name] = name === "out" ? value : Number(value);
  }
  return options;
}

async function overGrpc({ dist, database, lookups, n }) {
  const grpc = await import("@grpc/grpc-js");
  const { create, toBinary, fromBinary } = await import("@bufbuild/protobuf");
  const pb = await import(`${dist}/gen/envoy/service/auth/v3/external_auth_pb.js`);
  const { loadConfig } = await import(`${dist}/config/load.js`);
  const { createKeyward } = await import(`${dist}/app/keyward.js`);
  const { createLogger } = await import(`${dist}/lib/log.js`);
  const config = loadConfig({
    env: {},
    overrides: {
      database,
      listen: { host: "127.0.0.1", check: 0, admin: 0, http: 0 },
      policy: "deploy/policy.yaml",
    },
  });
  const keyward = await createKeyward(config, { logger: createLogger({ level: "silent" }) });
  const ports = await keyward.start();
  const client = new grpc.Client(`127.0.0.1:${ports.check}`, grpc.credentials.createInsecure());
  const encode = (token) =>
    Buffer.from(
      toBinary(
        pb.CheckRequestSchema,
        create(pb.CheckRequestSchema, {
          attributes: {
            request: {
              http: {
                method: "GET",
                path: "/api/v1/sources",
                headers: { authorization: `Bearer ${token}` },
              },
            },
          },
        }),
      ),
    );
  const call = (bytes) =>
    new Promise((done, fail) =>
      client.makeUnaryRequest(
        "/envoy.service.auth.v3.Authorization/Check",
        (b) => b,
        (b) => fromBinary(pb.CheckResponseSchema, b),
        bytes,
        (error, response) => (error ? fail(error) : done(response)),
      ),
    );
  const run = async (count, record) => {
    const out = [[], []];
    for (const kind of interleaved(count)) {
      const bytes = encode(kind === 0 ? unknownIdToken() : wrongSecretToken(lookups));
      const started = process.hrtime.bigint();
      const response = await call(bytes);
      const elapsed = process.hrtime.bigint() - started;
      if (response.status?.code !== 16) throw new Error("expected 401 invalid_token");
      if (record) out[kind].push(Number(elapsed));
    }
    return out;
  };
  try {
    await run(1_000, false);
    return await run(n, true);
  } finally {
    client.close();
    await keyward.close();
  }
}

function row(label, r) {
  const us = (ns) => (ns / 1000).toFixed(2);
  const p = (value) => (value < 1e-300 ? "< 1e-300" : value.toExponential(2));
  return (
    `| ${label} | ${r.n[0]} / ${r.n[1]} | ${us(r.medianUnknown)} | ${us(r.medianWrong)} | ` +
    `${us(r.trimmedUnknown)} | ${us(r.trimmedWrong)} | ${r.t.toFixed(2)} (df ${Math.round(r.df)}) | ` +
    `${p(r.tP)} | ${r.ksD.toFixed(4)} | ${p(r.ksP)} | ${verdict(r)} |`
  );
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const dist = new URL("../dist", import.meta.url).href;
  const { openDatabase } = await import(`${dist}/keys/db.js`);
  const { KeyRepository } = await import(`${dist}/keys/repository.js`);
  const { KeyVerifier } = await import(`${dist}/keys/verifier.js`);
  const { parseKey } = await import(`${dist}/keys/format.js`);
  const dir = mkdtempSync(join(tmpdir(), "keyward-timing-"));
  const database = join(dir, "keys.db");
  try {
    const writer = openDatabase(database);
    const seedStore = new KeyRepository(writer);
    const lookups = writer.transaction(() =>
      Array.from({ length: options.keys }, () => seedStore.create({ kind: "live" }).key.keyLookup),
    )();
    writer.close();

    // 1. KeyVerifier.verify, with the decision cache on as in production.
    const db = openDatabase(database);
    const store = new KeyVerifier(db, Date.now, 100_000);
    console.error(`KeyVerifier.verify: ${options.samples} samples of each kind...`);
    const [directUnknown, directWrong] = sampleVerify({
      verify: (parsed, token) => store.verify(parsed, token),
      parseKey,
      lookups,
      n: options.samples,
    });
    db.close();
    const direct = compare(directUnknown, directWrong);

    // 2. Check over gRPC (one call in flight: latency, not throughput).
    console.error(`Check over gRPC: ${options.samples} samples of each kind...`);
    const [grpcUnknown, grpcWrong] = await overGrpc({
      dist,
      database,
      lookups,
      n: options.samples,
    });
    const wire = compare(grpcUnknown, grpcWrong);

    const report = [
      "# Timing: unknown key id vs wrong secret",
      "",
      `Generated by \`node bench/timing.mjs --samples ${options.samples} --keys ${options.keys}\` ` +
        `on ${new Date().toISOString()} (Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ` +
        `load average ${loadavg()
          .map((l) => l.toFixed(1))
          .join(" ")}).`,
      "",
      `Key table: ${options.keys} keys. Samples of the two kinds are interleaved in random order; ` +
        "every token is fresh, so neither kind hits the decision cache. Times in µs.",
      "",
      "| measurement | n (unknown / wrong) | median unknown id | median wrong secret | 10 % trimmed mean unknown | trimmed mean wrong | Yuen–Welch t | p (t) | KS D | p (KS) | verdict |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
      row("KeyVerifier.verify (direct)", direct),
      row("Check over gRPC (loopback)", wire),
      "",
      "Verdict rule: *indistinguishable* unless the two-sample Kolmogorov–Smirnov test",
      "rejects at p < 0.001; the medians and the Yuen–Welch t on 10 % trimmed means give",
      "the size and direction of any difference.",
      "",
    ].join("\n");
    writeFileSync(options.out, report);
    console.log(report);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
