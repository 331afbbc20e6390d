import { existsSync, readFileSync } from "node:fs";
import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { NODE_FLAGS, ROLE_NODE_OPTIONS } from "../../src/lib/heap-tuning.js";
import { PORTS } from "./manifests.js";

// Docker cannot run here; the Dockerfile is checked as text: its stages,
// what each installs, and that the paths and ports it uses are keyward's.

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string;
  readonly instructions: Instruction[];
}

function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, keyword = "", rest = ""] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === "FROM") {
      const [, image = "", name = ""] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest) ?? [];
      const from = image.replace(/\$\{(\w+)\}/g, (_m, arg: string) => args[arg] ?? "");
      stages.push({ from, name, instructions: [] });
    } else if (upper === "ARG" && stages.length === 0) {
      const [name = "", value = ""] = rest.split("=");
      args[name] = value;
    } else {
      stages.at(-1)?.instructions.push({ keyword: upper, args: rest.replace(/\s+/g, " ") });
    }
  }
  return { args, stages };
}

const { stages } = parseDockerfile(readFileSync("deploy/Dockerfile", "utf8"));
const byName = (name: string) => stages.find((s) => s.name === name) as Stage;
const runtime = stages.at(-1) as Stage;
const all = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
const one = (stage: Stage, keyword: string) => all(stage, keyword).at(-1) ?? "";
/** The runtime stage's ENTRYPOINT words; node's own flags are those before the script. */
const entrypoint = JSON.parse(one(runtime, "ENTRYPOINT")) as string[];
const scriptAt = entrypoint.findIndex((word, i) => i > 0 && !word.startsWith("--"));
const nodeFlags = entrypoint.slice(1, scriptAt);
/** COPY sources and destination; `--from=stage` when copied from a stage. */
const copies = (stage: Stage) =>
  all(stage, "COPY").map((args) => {
    const words = args.split(" ");
    const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
    const paths = words.filter((w) => !w.startsWith("--"));
    return { from, sources: paths.slice(0, -1), destination: paths.at(-1) ?? "" };
  });

describe("deploy/Dockerfile", () => {
  it("builds in separate stages and runs on node:20-bookworm-slim", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(runtime.from).toBe("node:20-bookworm-slim");
    for (const stage of stages) expect(stage.from).toMatch(/^node:20-/);
  });

  it("compiles better-sqlite3 with python3, make and g++ outside the runtime image", () => {
    const modules = copies(runtime).find((c) => c.sources.includes("/app/node_modules"));
    const deps = byName(modules?.from ?? "");
    const run = all(deps, "RUN").join(" && ");
    expect(run).toMatch(/apt-get install .*python3/);
    expect(run).toMatch(/apt-get install .*\bmake\b/);
    expect(run).toMatch(/apt-get install .*g\+\+/);
    // Production dependencies only, without `prepare` (it needs dev dependencies).
    expect(run).toContain("npm ci --omit=dev --ignore-scripts");
    expect(run).toContain("npm rebuild better-sqlite3");
    expect(all(runtime, "RUN").join(" ")).not.toMatch(/apt-get|npm (ci|install)/);
  });

  it("compiles TypeScript in a build stage and copies only dist/ from it", () => {
    const dist = copies(runtime).find((c) => c.sources.includes("/app/dist"));
    const build = byName(dist?.from ?? "");
    const run = all(build, "RUN").join(" && ");
    expect(run).toContain("npm ci");
    expect(run).toContain("npm run build");
  });

  it("copies only files that exist in the repository", () => {
    for (const stage of stages) {
      for (const copy of copies(stage).filter((c) => c.from === undefined)) {
        for (const source of copy.sources) expect(existsSync(source), source).toBe(true);
      }
    }
  });

  it("runs as a non-root user, by number", () => {
    const user = one(runtime, "USER");
    expect(user).toMatch(/^[1-9]\d*(:[1-9]\d*)?$/);
  });

  it("exposes keyward's three ports and starts `keyward serve`", () => {
    expect(one(runtime, "EXPOSE").split(" ").map(Number)).toEqual([
      PORTS.check,
      PORTS.admin,
      PORTS.http,
    ]);
    expect([entrypoint[0], ...entrypoint.slice(scriptAt)]).toEqual([
      "node",
      "/app/bin/keyward.js",
      "serve",
    ]);
    // The CLI inside the container (`kubectl exec … keyward keys list`).
    expect(all(runtime, "RUN").join(" ")).toContain(
      "ln -s /app/bin/keyward.js /usr/local/bin/keyward",
    );
    const bin = copies(runtime).find((c) => c.from === undefined && c.sources.includes("bin"));
    expect(posix.resolve(one(runtime, "WORKDIR"), bin?.destination ?? "")).toBe("/app/bin");
  });

  it("starts node with keyward's node flag, as `npm start` and the `keyward` command do", () => {
    // NODE_FLAGS of src/lib/heap-tuning.ts: node refuses it in NODE_OPTIONS,
    // so each way of starting keyward puts it on node's command line.
    expect(nodeFlags).toEqual([NODE_FLAGS]);
    expect(entrypoint).toEqual(["node", NODE_FLAGS, "/app/bin/keyward.js", "serve"]);
    const start = JSON.parse(readFileSync("package.json", "utf8")).scripts.start as string;
    expect(start).toBe(`node ${NODE_FLAGS} bin/keyward.js serve`);
    expect(readFileSync("bin/keyward.js", "utf8").split("\n")[0]).toBe(
      `#!/usr/bin/env -S node ${NODE_FLAGS}`,
    );
  });

  it("sets the single and primary roles' V8 sizing as NODE_OPTIONS (src/lib/heap-tuning.ts)", () => {
    expect(/NODE_OPTIONS=(\S+)/.exec(one(runtime, "ENV"))?.[1]).toBe(ROLE_NODE_OPTIONS.single);
    expect(ROLE_NODE_OPTIONS.primary).toBe(ROLE_NODE_OPTIONS.single);
  });

  it("bakes in a default config that keyward's loader accepts, with paths that exist in the image", () => {
    const env = one(runtime, "ENV");
    const configPath = /KEYWARD_CONFIG=(\S+)/.exec(env)?.[1];
    const baked = copies(runtime).find((c) => c.destination === configPath);
    expect(baked?.sources).toEqual(["deploy/docker/keyward.yaml"]);
    const config = loadConfig({ file: "deploy/docker/keyward.yaml", env: {} });
    expect(config.listen).toEqual({ host: "0.0.0.0", ...PORTS });
    const workdir = one(runtime, "WORKDIR");
    const policy = copies(runtime).find((c) => c.sources.includes("deploy/policy.yaml"));
    expect(posix.resolve(workdir, policy?.destination ?? "")).toBe(config.policy);
    const run = all(runtime, "RUN").join(" ");
    const dataDir = posix.dirname(config.database);
    expect(run).toContain(`mkdir -p ${dataDir}`);
    expect(run).toContain(`chown ${one(runtime, "USER")} ${dataDir}`);
  });
});
