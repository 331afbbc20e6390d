// The rest of a full run: key creation (store, CLI, admin API), the
// multi-core comparison (`workers: 1` vs `workers: 2`) and CPU profiles.
import { execFileSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { CLIENT_CORE } from "./h2load.mjs";
import { logRun, measureH2load, pairedMedian, summarize } from "./measure.mjs";
import { PLAN, QUICK, WITH_PROTO } from "./plan.mjs";
import { summarizeProfile } from "./profile.mjs";
import { log, OUT, ROOT, RUN_DIR, SERVER_CORE, serverEnv } from "./servers.mjs";
import { startBaseline } from "./starters.mjs";

/**
 * Key creation. The admin API is measured once it exists (an admin port in
 * keyward's start-up line); until then, the store and the CLI.
 */
export async function keyCreation({ bin, issuer, keywardFrom, adminPort }, results) {
  log("key creation throughput");
  const createDb = join(RUN_DIR, "create.db");
  const storeCreate = JSON.parse(
    execFileSync(
      "taskset",
      [
        "-c",
        SERVER_CORE,
        process.execPath,
        "bench/create-keys.mjs",
        createDb,
        String(PLAN.durationS),
      ],
      { cwd: ROOT, encoding: "utf8" },
    ),
  );
  const cliRuns = QUICK ? 2 : 5;
  const cliStarted = performance.now();
  for (let i = 0; i < cliRuns; i++) {
    execFileSync(
      "taskset",
      [
        "-c",
        SERVER_CORE,
        process.execPath,
        bin,
        "keys",
        "create",
        "--kind",
        "live",
        "--tenant",
        "acme",
        "--scopes",
        "sources:read",
        "--db",
        createDb,
        "--json",
      ],
      { cwd: ROOT, env: serverEnv({}), stdio: ["ignore", "pipe", "pipe"] },
    );
  }
  results.create = {
    store: storeCreate,
    cli: { runs: cliRuns, msEach: (performance.now() - cliStarted) / cliRuns },
  };
  if (adminPort !== undefined) {
    // A keyward of its own on a fresh database, with a keys:admin key minted
    // straight into the store, serves CreateKey to the admin client.
    const adminDbFile = join(RUN_DIR, "admin.db");
    const adminDb = openDatabase(adminDbFile);
    const { secret } = new KeyRepository(adminDb).create({
      kind: "live",
      name: "bench admin",
      tenant: "ops",
      scopes: ["keys:admin"],
    });
    adminDb.close();
    const adminKeyward = await keywardFrom("keyward-admin", { database: adminDbFile, issuer });
    const options = {
      port: adminKeyward.ports.admin,
      token: secret,
      durationS: PLAN.durationS,
      concurrency: 8,
    };
    const output = execFileSync(
      "taskset",
      ["-c", CLIENT_CORE, process.execPath, "bench/admin-client.mjs", JSON.stringify(options)],
      { cwd: ROOT, encoding: "utf8" },
    );
    await adminKeyward.stop();
    results.create.admin = JSON.parse(output);
    log(`  admin CreateKey: ${results.create.admin.perSecond.toFixed(0)} keys/s`);
  }
}

/**
 * Multi-core: saturated key allow against keyward with `workers: 1` (Check
 * in its one process) and `workers: 2`, alternating, each allowed both
 * cores. The host has two, so h2load stays on core 1 and shares it with the
 * second worker; its own CPU is reported beside the figures.
 */
export async function workers({ database, issuer, keywardFrom, scenario }, results) {
  const bothCores = `${SERVER_CORE},${CLIENT_CORE}`;
  log(`workers: key allow, workers: 1 vs workers: 2, servers on cores ${bothCores}`);
  const options = { database, issuer };
  const workerRuns = { one: [], two: [] };
  const peaks = { one: [], two: [] };
  for (let round = 0; round < PLAN.pairs; round++) {
    // Fresh processes every round, as in the main rounds.
    const pair = [
      { side: "one", server: await keywardFrom("keyward-1-worker", options, { cores: bothCores }) },
      {
        side: "two",
        server: await keywardFrom(
          "keyward-2-workers",
          { ...options, workers: 2 },
          { cores: bothCores },
        ),
      },
    ];
    for (const { server } of pair) await measureH2load(server, scenario); // warm-up
    for (const { side, server } of pair) {
      const result = await measureH2load(server, scenario);
      workerRuns[side].push(result);
      logRun(server, result);
    }
    for (const { side, server } of pair) {
      peaks[side].push(server.peaks());
      await server.stop();
    }
  }
  // The round whose processes peaked highest in all, per setting.
  const highestTotal = (list) =>
    list.reduce((a, b) => (b.reduce((x, y) => x + y, 0) > a.reduce((x, y) => x + y, 0) ? b : a));
  results.workers = {
    cores: bothCores,
    one: summarize(workerRuns.one),
    two: summarize(workerRuns.two),
    scaling: pairedMedian(workerRuns.two, workerRuns.one, (x, y) => x.rps / y.rps),
    runs: {
      one: workerRuns.one.map((r) => Math.round(r.rps)),
      two: workerRuns.two.map((r) => Math.round(r.rps)),
    },
    peaksMb: { one: highestTotal(peaks.one), two: highestTotal(peaks.two) },
  };
}

/**
 * Where the time goes: CPU profiles under the same saturated load, of the
 * baseline and keyward (and the prototype), each in a fresh process.
 */
export async function profiles({ scenarios, database, issuer, keywardFrom, protoFrom }, results) {
  if (!QUICK || process.env.BENCH_PROFILE === "1") {
    results.profiles = [];
    const plan = [
      ["key_allow", "baseline"],
      ["key_allow", "keyward"],
      ["wrong_secret", "keyward"],
      ...(WITH_PROTO
        ? [
            ["key_allow", "prototype"],
            ["wrong_secret", "prototype"],
          ]
        : []),
    ];
    for (const [scenarioName, who] of plan) {
      log(`profile ${scenarioName} on ${who}`);
      const scenario = scenarios.find((s) => s.name === scenarioName);
      const dir = join(OUT, "profiles", `${scenarioName}-${who}`);
      rmSync(dir, { recursive: true, force: true });
      const nodeArgs = ["--cpu-prof", `--cpu-prof-dir=${dir}`];
      const options = { database, issuer };
      const server =
        who === "baseline"
          ? await startBaseline("baseline-profile", nodeArgs)
          : who === "prototype"
            ? await protoFrom("keyward-proto-profile", options, nodeArgs)
            : await keywardFrom("keyward-profile", options, { nodeArgs });
      const result = await measureH2load(server, scenario);
      await server.stop();
      const profile = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
      if (!profile) throw new Error(`no .cpuprofile in ${dir}`);
      const file = join(dir, profile);
      // Only the samples of h2load's measured period: no start-up, no warm-up.
      const summary = summarizeProfile(file, { top: 12, ...result.window });
      results.profiles.push({
        scenario: scenarioName,
        server: who,
        file: relative(ROOT, file),
        rps: result.rps,
        requests: result.requests,
        cpuUs: result.serverCpu?.usPerRequest ?? Number.NaN,
        ...summary,
      });
    }
  }
}
