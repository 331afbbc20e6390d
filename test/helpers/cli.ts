import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { NODE_FLAGS } from "../../src/lib/heap-tuning.js";

export const BIN = resolve("bin/keyward.js");

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `keyward …` to completion as a real child process (in `cwd`, default this one). */
export function keyward(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
): CliResult {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    encoding: "utf8",
    ...(cwd && { cwd }),
    env: { ...process.env, KEYWARD_CONFIG: "", KEYWARD_DATABASE: "", ...env },
    timeout: 30_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A `keyward serve` child process, resolved once it logs its ports. */
export interface ServeProcess {
  readonly child: ChildProcess;
  readonly ports: { check: number; admin: number; http: number };
  readonly stderr: () => string;
  /** What it wrote to standard output (node's own traces, e.g. `--trace-gc`). */
  readonly stdout: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `keyward serve ARGS`. `command` is what comes before `serve`: by
 * default node as the `keyward` command's #! line starts it.
 */
export function serve(
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
  cwd?: string,
  command: readonly string[] = [process.execPath, NODE_FLAGS, BIN],
): Promise<ServeProcess> {
  const [file = process.execPath, ...leading] = command;
  const child = spawn(file, [...leading, "serve", ...args], {
    ...(cwd && { cwd }),
    env: { ...process.env, KEYWARD_CONFIG: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`serve did not start:\n${stderr}`));
    }, 20_000);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}:\n${stderr}`));
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      for (const line of stderr.split("\n")) {
        if (!line.includes('"keyward started"')) continue;
        clearTimeout(timer);
        const { ports } = JSON.parse(line) as {
          ports: { check: number; admin: number; http: number };
        };
        resolvePromise({
          child,
          ports,
          stderr: () => stderr,
          stdout: () => stdout,
          stop(signal = "SIGTERM") {
            child.kill(signal);
            return exited;
          },
        });
        return;
      }
    });
  });
}

/** A `keyward serve` child on a fresh database whose first admin key was minted on the file. */
export interface BootstrappedServer {
  readonly server: ServeProcess;
  /** The database file the server and `--db` commands share. */
  readonly db: string;
  /** The bootstrap admin key's secret (keys:admin). */
  readonly token: string;
  /** `--server URL --token T` for `keys` commands through the admin API. */
  readonly remote: string[];
}

/**
 * The first-run story as a user does it: mint the first admin key directly on
 * a fresh database file (`keys create --db`), then start `keyward serve` on it.
 */
export async function bootstrapServer(prefix: string): Promise<BootstrappedServer> {
  const db = join(mkdtempSync(join(tmpdir(), prefix)), "keys.db");
  const boot = keyward([
    "keys",
    "create",
    "--db",
    db,
    "--kind",
    "live",
    "--name",
    "bootstrap admin",
    "--scopes",
    "keys:admin",
    "--json",
  ]);
  if (boot.code !== 0) throw new Error(`bootstrap failed: ${boot.stderr}`);
  const token = JSON.parse(boot.stdout).secret as string;
  const server = await serve([], {
    KEYWARD_DATABASE: db,
    KEYWARD_CHECK_PORT: "0",
    KEYWARD_ADMIN_PORT: "0",
    KEYWARD_HTTP_PORT: "0",
  });
  return {
    server,
    db,
    token,
    remote: ["--server", `http://127.0.0.1:${server.ports.admin}`, "--token", token],
  };
}
