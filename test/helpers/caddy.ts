import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.js";
import { freePort } from "./net.js";

/** The caddy binary: $CADDY, else /usr/bin/caddy, else the first on PATH. */
export function caddyBinary(): string {
  return findBinary("caddy", "CADDY", "/usr/bin/caddy");
}

/** Where a rendered Caddyfile listens and sends traffic; everything on 127.0.0.1. */
export interface CaddyPorts {
  readonly listen: number;
  /** keyward's HTTP (forward-auth) port. */
  readonly keyward: number;
  /** The protected service. */
  readonly app: number;
}

/**
 * Turns the shipped Caddyfile into one for loopback test ports instead of
 * the shipped :8000, 9193 and 8080. Throws when a value it replaces is
 * missing, so a change to the shipped file cannot silently leave the test
 * judging something else.
 */
export function renderCaddyfile(shipped: string, ports: CaddyPorts): string {
  const replace = (text: string, from: RegExp, to: string): string => {
    if (!from.test(text)) throw new Error(`Caddyfile: expected to find ${from}`);
    return text.replace(from, to);
  };
  let config = shipped;
  config = replace(config, /^:8000 \{$/m, `:${ports.listen} {\n\tbind 127.0.0.1`);
  config = replace(
    config,
    /forward_auth 127\.0\.0\.1:9193 \{/,
    `forward_auth 127.0.0.1:${ports.keyward} {`,
  );
  config = replace(
    config,
    /reverse_proxy 127\.0\.0\.1:8080$/m,
    `reverse_proxy 127.0.0.1:${ports.app}`,
  );
  return config;
}

/** Caddy's home, config and data directories, all under `dir`: it writes nothing elsewhere. */
function caddyEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: dir, XDG_CONFIG_HOME: dir, XDG_DATA_HOME: dir };
}

/** Runs `caddy validate` on the rendered Caddyfile; throws with Caddy's output when it fails. */
export function validateCaddyfile(shipped: string): string {
  const dir = mkdtempSync(join(tmpdir(), "keyward-caddy-"));
  try {
    const file = join(dir, "Caddyfile");
    writeFileSync(file, renderCaddyfile(shipped, { listen: 1, keyward: 2, app: 3 }));
    return execFileSync(caddyBinary(), ["validate", "--config", file, "--adapter", "caddyfile"], {
      env: caddyEnv(dir),
      stdio: ["ignore", "pipe", "pipe"],
      encoding: "utf8",
    });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`caddy validate failed: ${stderr || (error as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A running Caddy, started by a test. */
export interface RunningCaddy {
  readonly url: string;
  /** Caddy's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts a real Caddy (`caddy run`) with the shipped Caddyfile rendered for
 * loopback test ports, admin endpoint off, its own home directory, and waits
 * until it accepts connections.
 */
export async function startCaddy(
  shippedFile: string,
  ports: Omit<CaddyPorts, "listen">,
): Promise<RunningCaddy> {
  const dir = mkdtempSync(join(tmpdir(), "keyward-caddy-"));
  const listen = await freePort();
  const file = join(dir, "Caddyfile");
  writeFileSync(file, renderCaddyfile(readFileSync(shippedFile, "utf8"), { ...ports, listen }));
  const child = spawn(caddyBinary(), ["run", "--config", file, "--adapter", "caddyfile"], {
    env: caddyEnv(dir),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-64 * 1024);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));

  // Bounded by attempts, not a clock: Caddy starts in well under a second idle.
  for (let attempt = 0; !(await accepts(listen)); attempt++) {
    if (child.exitCode !== null || attempt > 400) {
      await stop(child, exited);
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`caddy did not start: ${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return {
    url: `http://127.0.0.1:${listen}`,
    log: () => output,
    async stop() {
      await stop(child, exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function stop(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
