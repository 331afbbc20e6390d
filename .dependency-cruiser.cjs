// Which way imports may run between the folders of src/ (README "Code map").
// `npm run depcheck` (run by .ci/run) fails on an import circle anywhere in
// src/ and on any import a folder is not allowed below.
/** Each folder, and the folders it may import from (lower floors only). */
const FLOORS = {
  lib: [],
  gen: [],
  auth: ["lib"],
  grpc: ["gen"],
  config: ["auth", "lib"],
  keys: ["auth", "lib"],
  jwt: ["auth", "config", "lib"],
  policy: ["auth", "config", "lib"],
  reflection: ["gen", "grpc"],
  pipeline: ["auth", "keys", "lib", "policy"],
  observability: ["auth", "lib", "pipeline"],
  http: ["auth", "lib", "pipeline"],
  check: ["auth", "config", "gen", "grpc", "lib", "pipeline", "reflection"],
  admin: ["auth", "config", "gen", "http", "keys", "lib", "pipeline"],
  replication: ["auth", "gen", "keys", "lib"],
  decider: ["auth", "config", "jwt", "keys", "lib", "observability", "pipeline", "policy"],
  // observability: the top-keys report a worker sends its main process; keys: the usage entries.
  workers: ["check", "config", "decider", "keys", "lib", "observability"],
  app: [
    "admin",
    "check",
    "config",
    "decider",
    "gen",
    "http",
    "jwt",
    "keys",
    "lib",
    // observability: merging the top-keys reports of the main process and its workers.
    "observability",
    "reflection",
    "replication",
    "workers",
  ],
  cli: ["admin", "app", "auth", "config", "gen", "grpc", "keys", "lib"],
  // The key console runs in the browser: generated messages only.
  console: ["gen"],
};

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "Modules import each other in a loop.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "no-unknown-folder",
      severity: "error",
      comment: "A folder of src/ that has no floor yet: add it to FLOORS and to README's Code map.",
      from: { path: "^src/", pathNot: `^src/(${Object.keys(FLOORS).join("|")})/` },
      to: {},
    },
    ...Object.entries(FLOORS).map(([folder, below]) => ({
      name: `${folder}-imports-only-below`,
      severity: "error",
      comment: `src/${folder}/ may import only from ${below.join(", ") || "nothing of src/"}.`,
      from: { path: `^src/${folder}/` },
      to: { path: "^src/", pathNot: `^src/(${[folder, ...below].join("|")})/` },
    })),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/gen/" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
  },
};
