// The servers the bench runs: keyward (as deployed, from a launcher, or as
// a user types it through npx) and the no-op baseline (as deployed, or
// plain), each a real process through servers.mjs.
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT, RUN_DIR, SERVER_CORE, serverEnv, spawnServer, startServer } from "./servers.mjs";

/**
 * Writes RUN_DIR/<stem>.yaml for a keyward of the bench. The machine is
 * shared, and other sessions' clean-up has been seen to signal every process
 * whose command line mentions "keyward"; so the file names keep that word out.
 */
function writeConfig(
  name,
  { database, issuer, cacheMaxEntries = 100_000, workers = 1, config = {} },
) {
  const stem = name.replaceAll("keyward", "kw");
  const file = join(RUN_DIR, `${stem}.yaml`);
  // JSON is YAML. Logging at info: every deny writes its line, as in production.
  writeFileSync(
    file,
    JSON.stringify(
      {
        database,
        policy: join(ROOT, "deploy/policy.yaml"),
        issuers: [issuer.config],
        cache: { max_entries: cacheMaxEntries },
        log_level: "info",
        // Only when asked for: a prototype build may predate the field.
        ...(workers !== 1 && { workers }),
        ...config,
      },
      null,
      2,
    ),
  );
  return { stem, file };
}

const EPHEMERAL_PORTS = {
  KEYWARD_LISTEN_HOST: "127.0.0.1",
  KEYWARD_CHECK_PORT: "0",
  KEYWARD_ADMIN_PORT: "0",
  KEYWARD_HTTP_PORT: "0",
};

/**
 * Starts keyward: `node <bin> serve --config RUN_DIR/<name>.yaml`, through a
 * one-line launcher that imports `bin` (keeping "keyward" out of the command
 * line, see writeConfig), with its ports from KEYWARD_*_PORT=0, the shipped
 * node flags and NODE_OPTIONS. `bin` defaults to the repository's
 * bin/keyward.js (which runs dist/); a prototype copy can be passed instead.
 */
export function startKeyward(
  name,
  options,
  { nodeArgs = [], bin = "bin/keyward.js", cores = SERVER_CORE } = {},
) {
  const { stem, file } = writeConfig(name, options);
  const launcher = join(RUN_DIR, `${stem}-serve.mjs`);
  writeFileSync(
    launcher,
    `await import(${JSON.stringify(pathToFileURL(resolve(ROOT, bin)).href)});\n`,
  );
  return startServer(
    name,
    [...nodeArgs, launcher, "serve", "--config", file],
    EPHEMERAL_PORTS,
    cores,
  );
}

/**
 * Starts keyward as README's CLI section shows a user typing it, `npx
 * keyward serve --config FILE`, from the repository (npx runs its bin), with
 * no node flags and no NODE_OPTIONS: whatever tuning keyward gets here, it
 * gives itself. Its command line does say "keyward" (see writeConfig).
 */
export function startKeywardServe(name, options) {
  const { file } = writeConfig(name, options);
  const env = serverEnv(EPHEMERAL_PORTS);
  delete env.NODE_OPTIONS;
  return spawnServer(name, ["npx", "--no-install", "keyward", "serve", "--config", file], env);
}

/** The no-op grpc-js baseline (bench/baseline-server.mjs); it answers allow to everything. */
export async function startBaseline(name = "baseline", nodeArgs = []) {
  const server = await startServer(name, [...nodeArgs, "bench/baseline-server.mjs"]);
  return { ...server, baseline: true };
}

/** The baseline as plain `node bench/baseline-server.mjs`: no node flags, no NODE_OPTIONS. */
export async function startPlainBaseline(name) {
  const env = serverEnv();
  delete env.NODE_OPTIONS;
  const server = await spawnServer(name, [process.execPath, "bench/baseline-server.mjs"], env);
  return { ...server, baseline: true };
}
