import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.js";
import { freePort } from "./net.js";

/** The nginx binary: $NGINX, else /usr/sbin/nginx, else the first on PATH. */
export function nginxBinary(): string {
  return findBinary("nginx", "NGINX", "/usr/sbin/nginx");
}

/** Where a rendered config sends traffic and listens; everything on 127.0.0.1. */
export interface NginxPorts {
  /** nginx's own listen port. */
  readonly listen: number;
  /** keyward's HTTP (forward-auth) port. */
  readonly keyward: number;
  /** The protected service. */
  readonly app: number;
}

/**
 * Turns a shipped config (deploy/nginx/*.conf) into one that runs from a
 * temporary prefix directory: loopback test ports instead of the shipped
 * 8000/9193/8080, pid, logs and temp files under `dir`. Throws when a
 * shipped value it replaces is missing, so a change to the shipped file
 * cannot silently leave the test judging something else.
 */
export function renderNginxConfig(shipped: string, ports: NginxPorts, dir: string): string {
  const replace = (text: string, from: RegExp, to: string): string => {
    if (!from.test(text)) throw new Error(`nginx config: expected to find ${from}`);
    return text.replace(from, to);
  };
  let config = shipped;
  config = replace(config, /^(\s*)listen 8000;/m, `$1listen 127.0.0.1:${ports.listen};`);
  config = replace(config, /server 127\.0\.0\.1:9193;/, `server 127.0.0.1:${ports.keyward};`);
  config = replace(config, /server 127\.0\.0\.1:8080;/, `server 127.0.0.1:${ports.app};`);
  config = replace(
    config,
    /^http \{$/m,
    [
      "http {",
      `    access_log ${join(dir, "access.log")};`,
      `    client_body_temp_path ${join(dir, "client_body")};`,
      `    proxy_temp_path ${join(dir, "proxy")};`,
      `    fastcgi_temp_path ${join(dir, "fastcgi")};`,
      `    uwsgi_temp_path ${join(dir, "uwsgi")};`,
      `    scgi_temp_path ${join(dir, "scgi")};`,
    ].join("\n"),
  );
  return `pid ${join(dir, "nginx.pid")};\n${config}`;
}

/** Runs `nginx -t` on a rendered config; throws with nginx's output when it fails. */
export function testNginxConfig(shipped: string): void {
  const dir = makePrefix();
  try {
    const file = join(dir, "nginx.conf");
    writeFileSync(file, renderNginxConfig(shipped, { listen: 1, keyward: 2, app: 3 }, dir));
    execFileSync(nginxBinary(), ["-t", "-q", ...prefixArgs(dir, file)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? "";
    throw new Error(`nginx -t failed: ${stderr || (error as Error).message}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A running nginx, started by a test. */
export interface RunningNginx {
  readonly port: number;
  readonly url: string;
  /** nginx's error log so far (for failure messages). */
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * Starts a real nginx in the foreground (`daemon off`) with a shipped config
 * rendered for loopback test ports, and waits until it accepts connections.
 * It has its own prefix directory, so it needs no system paths and leaves
 * nothing behind after `stop()`.
 */
export async function startNginx(
  shippedConfigFile: string,
  ports: Omit<NginxPorts, "listen">,
): Promise<RunningNginx> {
  const binary = nginxBinary();
  const dir = makePrefix();
  const listen = await freePort();
  const file = join(dir, "nginx.conf");
  const errorLogFile = join(dir, "error.log");
  writeFileSync(
    file,
    renderNginxConfig(readFileSync(shippedConfigFile, "utf8"), { ...ports, listen }, dir),
  );
  const child = spawn(binary, [...prefixArgs(dir, file), "-g", "daemon off;"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const errorLog = () =>
    `${stderr}${existsSync(errorLogFile) ? readFileSync(errorLogFile, "utf8") : ""}`;

  const deadline = Date.now() + 10_000;
  while (!(await accepts(listen))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop(child, exited);
      const log = errorLog();
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`nginx did not start: ${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }

  return {
    port: listen,
    url: `http://127.0.0.1:${listen}`,
    errorLog,
    async stop() {
      await stop(child, exited);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What the echo service saw of one request. */
export interface EchoedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** A service on loopback that answers every request with the request it received, as JSON. */
export interface EchoService {
  readonly port: number;
  /** Every request received, oldest first. */
  readonly received: EchoedRequest[];
  close(): Promise<void>;
}

export async function startEchoService(): Promise<EchoService> {
  const received: EchoedRequest[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const echoed = {
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      received.push(echoed);
      const text = JSON.stringify(echoed);
      response.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      response.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function makePrefix(): string {
  const dir = mkdtempSync(join(tmpdir(), "keyward-nginx-"));
  // Run as root, nginx's workers drop to an unprivileged user, which must
  // be able to reach the temp directories below this one.
  chmodSync(dir, 0o755);
  return dir;
}

function prefixArgs(dir: string, file: string): string[] {
  return ["-p", `${dir}/`, "-c", file, "-e", join(dir, "error.log")];
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

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  // SIGQUIT is nginx's graceful shutdown; SIGKILL only if it hangs.
  child.kill("SIGQUIT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}
