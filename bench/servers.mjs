// Child processes of the bench: keyward and the baseline as real servers
// pinned to the server core, each logging to its own file; every child is
// tracked and killed when the bench exits, however it exits.
import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, truncateSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const OUT = join(ROOT, "bench/out");
export const RUN_DIR = join(OUT, "run");
/** The core every server runs on; load generators use CLIENT_CORE (h2load.mjs). */
export const SERVER_CORE = "0";
const DOCKERFILE = readFileSync(join(ROOT, "deploy/Dockerfile"), "utf8");
/**
 * The V8 options keyward ships with: deploy/Dockerfile's NODE_OPTIONS (a heap
 * cap, bench/NOTES.md finding 3) and the node flags of its ENTRYPOINT (how
 * fast that capped heap grows, NOTES fourth round). Every server of the
 * bench, the baseline included, runs with both, so keyward is measured as it
 * is deployed and the baseline under the same V8.
 */
export const SHIPPED_NODE_OPTIONS = /NODE_OPTIONS=(\S+)/.exec(DOCKERFILE)?.[1] ?? "";
const ENTRYPOINT = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(DOCKERFILE)?.[1] ?? "[]");
/** node's own flags: the ENTRYPOINT's words between `node` and the script. */
export const SHIPPED_NODE_FLAGS = ENTRYPOINT.slice(
  1,
  ENTRYPOINT.findIndex((word, i) => i > 0 && !word.startsWith("--")),
);

const children = new Set();

/** Registers a child process for clean-up; returns it. */
export function track(child) {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

/**
 * Kills every tracked child and its descendants at once (SIGKILL): used on
 * exit and on error. Descendants too: `npx keyward serve` is npm, a shell and
 * then keyward.
 */
export function killAll() {
  for (const child of children) {
    for (const pid of child.pid === undefined ? [] : processTree(child.pid).reverse()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

export function log(message) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** The parent's environment minus any KEYWARD_* that could change what runs, plus `extra`. */
export function serverEnv(extra = {}) {
  const env = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("KEYWARD_")) env[name] = value;
  }
  return { ...env, ...extra };
}

/**
 * Spawns `node <shipped flags> ...nodeArgs` (so a flag in nodeArgs wins)
 * pinned to the server core (or to `cores`), with the shipped NODE_OPTIONS;
 * see {@link spawnServer}.
 */
export function startServer(name, nodeArgs, env = {}, cores = SERVER_CORE) {
  return spawnServer(
    name,
    [process.execPath, ...SHIPPED_NODE_FLAGS, ...nodeArgs],
    serverEnv({ NODE_OPTIONS: SHIPPED_NODE_OPTIONS, ...env }),
    cores,
  );
}

/**
 * Spawns `command` pinned to the server core (or to `cores`), its stderr
 * (JSON log lines) appended to RUN_DIR/<name>.log, and waits for its
 * "... started" line. Start-up time is that line's own timestamp minus the
 * moment of spawning.
 */
export async function spawnServer(name, command, env, cores = SERVER_CORE) {
  const logFile = join(RUN_DIR, `${name}.log`);
  closeSync(openSync(logFile, "w"));
  // O_APPEND, so the file can be truncated between runs while the server writes.
  const fd = openSync(logFile, "a");
  const spawnedAt = Date.now();
  const child = track(
    spawn("taskset", ["-c", cores, ...command], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "ignore", fd],
    }),
  );
  closeSync(fd);
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    const text = readFileSync(logFile, "utf8");
    const line = text.split("\n").find((l) => /"msg":"(keyward|baseline) started"/.test(l));
    if (line) {
      const record = JSON.parse(line);
      return {
        name,
        child,
        pid: child.pid,
        port: record.ports.check,
        ports: record.ports,
        startupMs: Date.parse(record.time) - spawnedAt,
        logFile,
        clearLog: () => truncateSync(logFile, 0),
        memory: () => memoryOf(child.pid),
        /** Peak RSS of each process of the server, MB (main first). */
        peaks: () => processTree(child.pid).map((pid) => memoryOf(pid).hwmMb),
        sched: () => schedOf(child.pid),
        stop: () => stopServer(child),
      };
    }
    if (exited || Date.now() > deadline) {
      throw new Error(`${name} did not start:\n${text.split("\n").slice(-5).join("\n")}`);
    }
    await sleep(5);
  }
}

/**
 * SIGTERM to the process and every descendant (keyward drains and exits,
 * writing any --cpu-prof profile; npm, which `npx keyward serve` starts
 * with, does not pass the signal on), then waits for all of them to be gone;
 * SIGKILL to whatever is left after 10 s.
 */
async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const pids = processTree(child.pid).reverse();
  const signal = (name) => {
    for (const pid of pids) {
      try {
        process.kill(pid, name);
      } catch {
        // already gone
      }
    }
  };
  const alive = () =>
    pids.some((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
  signal("SIGTERM");
  const deadline = Date.now() + 10_000;
  while (alive() && Date.now() < deadline) await sleep(20);
  if (alive()) signal("SIGKILL");
  if (child.exitCode === null && child.signalCode === null) {
    await new Promise((done) => child.once("exit", done));
  }
}

/** Resident memory (current and peak) of a process, MB, from /proc. */
export function memoryOf(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field) =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  return { rssMb: kb("VmRSS") / 1024, hwmMb: kb("VmHWM") / 1024 };
}

/** The process and its children (keyward's Check workers), by pid. */
export function processTree(pid) {
  const pids = [pid];
  for (let i = 0; i < pids.length; i++) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pids[i]}/task`);
    } catch {
      continue; // the process exited meanwhile
    }
    for (const tid of tids) {
      try {
        const children = readFileSync(`/proc/${pids[i]}/task/${tid}/children`, "utf8");
        for (const child of children.split(" ").filter(Boolean)) pids.push(Number(child));
      } catch {
        // the thread exited meanwhile
      }
    }
  }
  return pids;
}

/**
 * Nanoseconds the process and its children (all their threads) have spent
 * running on a CPU and waiting in a run queue for one, from
 * /proc/<pid>/task/<tid>/schedstat.
 * Waiting time is contention: another process had the server's core.
 */
export function schedOf(pid) {
  let run = 0;
  let wait = 0;
  for (const member of processTree(pid)) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${member}/task`);
    } catch {
      continue; // the process exited meanwhile
    }
    for (const tid of tids) {
      try {
        const [ran, waited] = readFileSync(`/proc/${member}/task/${tid}/schedstat`, "utf8").split(
          " ",
        );
        run += Number(ran);
        wait += Number(waited);
      } catch {
        // the thread exited meanwhile
      }
    }
  }
  return { run, wait, at: process.hrtime.bigint() };
}

/** CPU use between two schedOf samples: shares of the wall time, and µs per request. */
export function cpuBetween(start, end, requests) {
  const wall = Number(end.at - start.at);
  const run = end.run - start.run;
  return {
    share: run / wall,
    waitShare: (end.wait - start.wait) / wall,
    usPerRequest: requests > 0 ? run / 1000 / requests : Number.NaN,
  };
}
