import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Code, ConnectError } from "@connectrpc/connect";
import type { JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKeyward, type Keyward, type KeywardPorts } from "../../src/app/keyward.js";
import { loadConfig } from "../../src/config/load.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { createLogger } from "../../src/lib/log.js";
import {
  adminClient,
  type KeywardProcess,
  outcome,
  spawnExpectingFailure,
  spawnKeyward,
  WireCheckClient,
} from "../helpers/hardening.js";
import {
  AUDIENCE,
  claims,
  ISSUER,
  newSigningKey,
  nowSeconds,
  type SigningKey,
  signToken,
} from "../helpers/jwks.js";
import { LogCapture, scopeTablePolicyFile } from "../helpers/keyward.js";

const NOBODY = 65534;

/** GET on the HTTP port: status and parsed JSON. */
async function probe(port: number, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: await response.json() };
}

/** "allow" or the deny code of a GET /api/v1/sources with `token`. */
async function decideOn(client: WireCheckClient, token: string, deadlineMs = 10_000) {
  return outcome(
    await client.send(
      {
        method: "GET",
        path: "/api/v1/sources",
        headers: { authorization: `Bearer ${token}` },
      },
      deadlineMs,
    ),
  );
}

/** The Connect code of a failed admin call, or "ok". */
async function adminOutcome(call: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await call;
    return { code: "ok", message: "" };
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: Code[e.code] ?? String(e.code), message: e.rawMessage };
  }
}

/** A database with a root admin key and `count` sources:read keys, checkpointed into the main file. */
function seedDatabase(database: string, count: number) {
  const db = openDatabase(database);
  const store = new KeyRepository(db);
  const root = store.create({ kind: "live", scopes: ["keys:admin"] }).secret;
  const keys = db.transaction(() =>
    Array.from({ length: count }, () => store.create({ kind: "live", scopes: ["sources:read"] })),
  )();
  db.pragma("wal_checkpoint(TRUNCATE)");
  db.close();
  return { root, keys };
}

describe("fault: the database files are unlinked while keyward runs", () => {
  // What Linux does: an unlinked file lives on while a descriptor is open.
  // keyward's two connections keep the database, its WAL and the shared
  // memory index open, so it goes on deciding from the unlinked inodes;
  // nothing it writes from then on survives a restart.
  let dir = "";
  let database = "";
  let server: KeywardProcess;
  let check: WireCheckClient;
  let seeded: ReturnType<typeof seedDatabase>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-unlink-"));
    database = join(dir, "keys.db");
    seeded = seedDatabase(database, 50);
    server = await spawnKeyward({ database });
    check = new WireCheckClient(server.ports.check);
    expect(await decideOn(check, seeded.keys[0]?.secret as string)).toBe("allow");
    for (const suffix of ["", "-wal", "-shm"]) {
      if (existsSync(database + suffix)) unlinkSync(database + suffix);
    }
  });
  afterAll(async () => {
    check?.close();
    await server?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps deciding correctly from its open descriptors, cached or not", async () => {
    expect(await decideOn(check, seeded.keys[0]?.secret as string)).toBe("allow");
    expect(await decideOn(check, seeded.keys[40]?.secret as string)).toBe("allow");
    expect(await decideOn(check, `${seeded.keys[1]?.secret.slice(0, 26)}${"0".repeat(48)}`)).toBe(
      "invalid_token",
    );
    expect((await probe(server.ports.http, "/healthz")).status).toBe(200);
  });

  it("refuses admin writes (503 unavailable) and fails /readyz once the file is gone, since no write could survive a restart", async () => {
    const admin = adminClient(server.ports.admin, seeded.root);
    const revoked = await adminOutcome(admin.revokeKey({ id: seeded.keys[2]?.key.id as string }));
    const ready = await probe(server.ports.http, "/readyz");
    expect({ admin: revoked.code, readyz: ready.status }).toEqual({
      admin: "Unavailable",
      readyz: 503,
    });
  });

  it("after a restart, starts on a new empty database: every old key is invalid_token (fail closed)", async () => {
    await server.stop("SIGTERM");
    server = await spawnKeyward({ database });
    check.close();
    check = new WireCheckClient(server.ports.check);
    expect(await decideOn(check, seeded.keys[0]?.secret as string)).toBe("invalid_token");
    expect(await decideOn(check, seeded.root)).toBe("invalid_token");
  });
});

describe("fault: the database files are made unreadable (keyward running as an unprivileged user)", () => {
  // Root ignores file modes, so keyward runs as `nobody` here. Permissions
  // are checked when a file is opened: a running keyward keeps its
  // descriptors; a restart is what fails, and it recovers once the mode is back.
  let dir = "";
  let database = "";
  let server: KeywardProcess | undefined;
  let check: WireCheckClient | undefined;
  let seeded: ReturnType<typeof seedDatabase>;
  const files = () => ["", "-wal", "-shm"].map((s) => database + s).filter((f) => existsSync(f));

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "keyward-unreadable-"));
    database = join(dir, "keys.db");
    seeded = seedDatabase(database, 10);
    chownSync(dir, NOBODY, NOBODY);
    for (const file of files()) chownSync(file, NOBODY, NOBODY);
  });
  afterAll(async () => {
    check?.close();
    await server?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("keeps answering and writing through its open descriptors after chmod 000", async () => {
    server = await spawnKeyward({ database, uid: NOBODY, gid: NOBODY });
    check = new WireCheckClient(server.ports.check);
    const admin = adminClient(server.ports.admin, seeded.root);
    for (const file of files()) chmodSync(file, 0o000);
    chmodSync(dir, 0o000);
    expect(await decideOn(check, seeded.keys[0]?.secret as string)).toBe("allow");
    expect(await decideOn(check, seeded.keys[9]?.secret as string)).toBe("allow");
    const revoked = await adminOutcome(admin.revokeKey({ id: seeded.keys[1]?.key.id as string }));
    expect(revoked.code).toBe("ok");
    expect(await decideOn(check, seeded.keys[1]?.secret as string)).toBe("key_revoked");
    expect((await probe(server.ports.http, "/readyz")).status).toBe(200);
  });

  it("refuses to start on an unreadable database with one line saying so, and starts once the mode is restored", async () => {
    await server?.stop("SIGTERM");
    server = undefined;
    const failed = await spawnExpectingFailure({ database, uid: NOBODY, gid: NOBODY });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr.trim().split("\n")).toHaveLength(1);
    expect(failed.stderr).toMatch(/unable to open database file/);

    chmodSync(dir, 0o700);
    for (const file of files()) chmodSync(file, 0o600);
    server = await spawnKeyward({ database, uid: NOBODY, gid: NOBODY });
    check?.close();
    check = new WireCheckClient(server.ports.check);
    expect(await decideOn(check, seeded.keys[0]?.secret as string)).toBe("allow");
    // The revocation written while the files were unreadable was kept.
    expect(await decideOn(check, seeded.keys[1]?.secret as string)).toBe("key_revoked");
  });
});

describe("fault: the database file is corrupted under a running keyward", () => {
  let dir = "";
  let database = "";
  let server: KeywardProcess | undefined;
  let check: WireCheckClient | undefined;
  let seeded: ReturnType<typeof seedDatabase>;
  const seen = {
    uncached: new Set<string>(),
    cached: "",
    healthz: 0,
    readyz: 0,
    inPlaceRestore: [] as string[],
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-corrupt-"));
    database = join(dir, "keys.db");
    // Enough keys that most of the table is not in SQLite's page cache.
    seeded = seedDatabase(database, 3_000);
    const original = readFileSync(database);
    server = await spawnKeyward({ database });
    const client = new WireCheckClient(server.ports.check);
    check = client;
    expect(await decideOn(client, seeded.keys[0]?.secret as string)).toBe("allow");

    // Every page but the first (the header and schema) becomes garbage.
    const fd = openSync(database, "r+");
    writeSync(fd, Buffer.alloc(original.length - 4096, 0xab), 0, original.length - 4096, 4096);
    closeSync(fd);
    for (const key of seeded.keys.slice(1000, 1040)) {
      seen.uncached.add(await decideOn(client, key.secret));
    }
    seen.cached = await decideOn(client, seeded.keys[0]?.secret as string);
    seen.healthz = (await probe(server.ports.http, "/healthz")).status;
    seen.readyz = (await probe(server.ports.http, "/readyz")).status;

    // The bytes come back under the running process...
    writeFileSync(database, original);
    for (const key of seeded.keys.slice(2000, 2005)) {
      seen.inPlaceRestore.push(await decideOn(client, key.secret));
    }
    console.info(`corrupt: after an in-place restore, without restart: ${seen.inPlaceRestore}`);
  });
  afterAll(async () => {
    check?.close();
    await server?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("denies 503 unavailable for keys it must read from the corrupt file, and stays up", () => {
    expect([...seen.uncached]).toEqual(["unavailable"]);
    expect(seen.healthz).toBe(200);
    expect(server?.alive()).toBe(true);
  });

  it("still allows a key it verified before the fault, from the decision cache", () => {
    expect(seen.cached).toBe("allow");
  });

  it("reports not ready on /readyz while Check cannot read its store", () => {
    // README: /readyz is "store readable"; `SELECT 1` never touches the file.
    expect(seen.readyz).toBe(503);
  });

  it("decides correctly again once the file is restored and keyward restarted", async () => {
    // In place, SQLite's page cache may keep pages read during the fault
    // (the restore above shows which answers came back); a restart reopens
    // the file and every key is judged from the good bytes.
    await server?.stop("SIGTERM");
    server = await spawnKeyward({ database });
    check?.close();
    const client = new WireCheckClient(server.ports.check);
    check = client;
    for (const key of seeded.keys.slice(1000, 1010)) {
      expect(await decideOn(client, key.secret)).toBe("allow");
    }
  });
});

describe("fault: the disk fills up (2 MiB tmpfs)", () => {
  let dir = "";
  let mount = "";
  let database = "";
  let filler = "";
  let mounted = false;
  let server: KeywardProcess | undefined;
  let check: WireCheckClient | undefined;
  let seeded: ReturnType<typeof seedDatabase>;
  let admin: ReturnType<typeof adminClient>;
  const acknowledged: string[] = [];
  let failure: { code: string; message: string; ms: number } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-full-"));
    mount = join(dir, "mnt");
    database = join(mount, "keys.db");
    filler = join(mount, "filler");
    mkdirSync(mount);
    try {
      execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mount], { stdio: "pipe" });
      mounted = true;
    } catch (error) {
      // These tests run as root in CI; a mount that fails there is a broken
      // environment, not something to skip silently.
      throw new Error(
        `cannot mount a tmpfs for the disk-full test (uid ${process.getuid?.()}): ${String(
          (error as { stderr?: Buffer }).stderr ?? error,
        )}`,
      );
    }
    seeded = seedDatabase(database, 20);
    server = await spawnKeyward({ database });
    check = new WireCheckClient(server.ports.check);
    admin = adminClient(server.ports.admin, seeded.root, 15_000);
    // Leave ~32 KiB: a handful of WAL frames.
    const free = Number(
      execFileSync("df", ["--output=avail", "-B1", mount]).toString().split("\n")[1],
    );
    writeFileSync(filler, Buffer.alloc(Math.max(0, free - 32 * 1024)));
    for (let i = 0; i < 500 && !failure; i++) {
      const started = performance.now();
      const result = await adminOutcome(
        admin
          .createKey({ kind: "live", scopes: ["sources:read"], name: "x".repeat(150) })
          .then((r) => acknowledged.push(r.secret)),
      );
      if (result.code !== "ok") failure = { ...result, ms: performance.now() - started };
    }
    console.info(`disk full: ${acknowledged.length} creates, then ${JSON.stringify(failure)}`);
  }, 60_000);
  afterAll(async () => {
    check?.close();
    await server?.stop("SIGKILL");
    if (mounted) {
      try {
        execFileSync("umount", [mount], { stdio: "pipe" });
      } catch {
        execFileSync("umount", ["-l", mount], { stdio: "pipe" });
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("refuses the write that finds the disk full with an answer, not a hang, and stays up", () => {
    expect(failure, "the disk never filled").toBeDefined();
    // The client's 15 s deadline is a hang guard; how fast is the bench's business.
    expect(failure?.code).not.toBe("DeadlineExceeded");
    expect(server?.alive()).toBe(true);
  });

  it("answers that write 503 unavailable saying the disk is full, not 500 internal error", () => {
    expect({
      code: failure?.code,
      saysWhy: /full|space|disk/i.test(failure?.message ?? ""),
    }).toEqual({ code: "Unavailable", saysWhy: true });
  });

  it("keeps deciding while the disk is full", async () => {
    const client = check as WireCheckClient;
    expect(await decideOn(client, seeded.keys[0]?.secret as string)).toBe("allow");
    for (const secret of acknowledged) expect(await decideOn(client, secret)).toBe("allow");
    expect((await probe((server as KeywardProcess).ports.http, "/healthz")).status).toBe(200);
  });

  it("writes again once space is freed, and loses nothing it acknowledged", async () => {
    unlinkSync(filler);
    const { secret } = await admin.createKey({ kind: "live", scopes: ["sources:read"] });
    expect(await decideOn(check as WireCheckClient, secret)).toBe("allow");
    await server?.stop("SIGTERM");
    const db = openDatabase(database);
    expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    db.close();
    server = await spawnKeyward({ database });
    check?.close();
    const client = new WireCheckClient(server.ports.check);
    check = client;
    for (const s of [...acknowledged, secret]) expect(await decideOn(client, s)).toBe("allow");
  });
});

describe("fault: SQLite is locked by another process for longer than busy_timeout", () => {
  let dir = "";
  let database = "";
  let server: KeywardProcess | undefined;
  let check: WireCheckClient | undefined;
  let locker: ChildProcess | undefined;
  let seeded: ReturnType<typeof seedDatabase>;
  const seen = {
    /** Slowest Check (valid key: its last-used time is due to be written) while locked. */
    slowestWithUsage: 0,
    /** Slowest Check (unknown key: nothing to write) while an admin write waits. */
    slowestDuringAdmin: 0,
    answersWithUsage: new Set<string>(),
    answersDuringAdmin: new Set<string>(),
    checksWithUsage: 0,
    checksDuringAdmin: 0,
    admin: { code: "", message: "" },
    adminMs: 0,
  };

  /** Another process takes SQLite's write lock (BEGIN EXCLUSIVE) and holds it until killed. */
  function holdWriteLock(): Promise<ChildProcess> {
    const script = `
      const Database = require("better-sqlite3");
      const db = new Database(process.argv[1]);
      db.exec("BEGIN EXCLUSIVE");
      process.stdout.write("locked\\n");
      setTimeout(() => {}, 60000);
    `;
    const child = spawn(process.execPath, ["-e", script, database], {
      cwd: process.cwd(),
      stdio: ["ignore", "pipe", "inherit"],
    });
    locker = child;
    return new Promise((done, fail) => {
      child.stdout?.once("data", () => done(child));
      child.once("exit", (code) => fail(new Error(`locker exited with ${code}`)));
    });
  }

  /**
   * Checks every 100 ms until `until` resolves (at least `atLeast` times);
   * returns how many were answered and the slowest answer's time (logged
   * only: latency is the bench's business).
   */
  async function checkUntil(
    token: string,
    until: Promise<unknown>,
    answers: Set<string>,
    atLeast = 1,
  ): Promise<{ count: number; slowest: number }> {
    let done = false;
    void until.finally(() => {
      done = true;
    });
    let slowest = 0;
    let count = 0;
    for (; count < 300 && (!done || count < atLeast); count++) {
      const started = performance.now();
      answers.add(await decideOn(check as WireCheckClient, token, 20_000));
      slowest = Math.max(slowest, performance.now() - started);
      await sleep(100);
    }
    return { count, slowest };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "keyward-busy-"));
    database = join(dir, "keys.db");
    seeded = seedDatabase(database, 10);
    server = await spawnKeyward({ database });
    check = new WireCheckClient(server.ports.check);
    const admin = adminClient(server.ports.admin, seeded.root, 30_000);
    const valid = seeded.keys[0]?.secret as string;
    expect(await decideOn(check, valid)).toBe("allow");

    const lock = await holdWriteLock();
    // Phase 1: only Checks with a valid key, for longer than the 5 s
    // last-used flush period.
    // At least 10 of them, however slow the machine.
    const phase1 = await checkUntil(valid, sleep(7_000), seen.answersWithUsage, 10);
    seen.slowestWithUsage = phase1.slowest;
    seen.checksWithUsage = phase1.count;
    // Phase 2: an admin write while Checks (unknown key, nothing to record) go on.
    const unknown = `sk_live_${"0".repeat(16)}_${"1".repeat(48)}`;
    const started = performance.now();
    const write = adminOutcome(admin.createKey({ kind: "live", scopes: ["sources:read"] })).then(
      (result) => {
        seen.adminMs = performance.now() - started;
        seen.admin = result;
      },
    );
    const phase2 = await checkUntil(unknown, write, seen.answersDuringAdmin);
    seen.slowestDuringAdmin = phase2.slowest;
    seen.checksDuringAdmin = phase2.count;
    await write;
    lock.kill("SIGKILL");
    await new Promise((done) => lock.once("exit", done));
    console.info(
      `busy: ${JSON.stringify({
        ...seen,
        answersWithUsage: [...seen.answersWithUsage],
        answersDuringAdmin: [...seen.answersDuringAdmin],
      })}`,
    );
  }, 60_000);
  afterAll(async () => {
    locker?.kill("SIGKILL");
    check?.close();
    await server?.stop("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers every Check correctly while locked, and stays up", () => {
    expect([...seen.answersWithUsage]).toEqual(["allow"]);
    expect([...seen.answersDuringAdmin]).toEqual(["invalid_token"]);
    expect(server?.alive()).toBe(true);
  });

  it("answers the admin write with a clear, retryable 503 unavailable (busy_timeout, not the client's deadline)", () => {
    expect({
      code: seen.admin.code,
      saysBusy: /busy|locked/i.test(seen.admin.message),
    }).toEqual({ code: "Unavailable", saysBusy: true });
  });

  it("keeps Check answering while another process holds the write lock (WAL readers do not wait)", () => {
    // Bounded by work, not latency: every one of these answers was made
    // while the other process still held the lock (it is released only after
    // both phases), and a reader that needed the lock would have answered
    // 503 unavailable after busy_timeout instead of allow / invalid_token.
    expect(seen.checksWithUsage).toBeGreaterThanOrEqual(10);
    expect(seen.checksDuringAdmin).toBeGreaterThanOrEqual(1);
    expect([...seen.answersWithUsage]).toEqual(["allow"]);
    expect([...seen.answersDuringAdmin]).toEqual(["invalid_token"]);
  });

  it("accepts writes again once the lock is released", async () => {
    const admin = adminClient((server as KeywardProcess).ports.admin, seeded.root);
    const { secret } = await admin.createKey({ kind: "live", scopes: ["sources:read"] });
    expect(await decideOn(check as WireCheckClient, secret)).toBe("allow");
  });
});

describe("fault: the JWKS server is slow, answers garbage, then recovers", () => {
  type Mode = "ok" | "slow" | "hang" | "garbage" | "error";
  let mode: Mode = "ok";
  let published: JWK[] = [];
  let requests = 0;
  let jwks: Server;
  let jwksUrl: string;
  let skew = 0;
  let signing: SigningKey;
  const instances: { keyward: Keyward; dir: string; client: WireCheckClient }[] = [];

  beforeAll(async () => {
    signing = await newSigningKey("kid-1");
    jwks = createServer((_req, res) => {
      requests++;
      const body = JSON.stringify({ keys: published });
      if (mode === "hang") return; // never answers (closed in afterAll)
      if (mode === "slow") {
        // Longer than the verifier's 2 s fetch timeout.
        const timer = setTimeout(() => res.end(body), 3_000);
        res.on("close", () => clearTimeout(timer));
      } else if (mode === "garbage") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end("<html>502 Bad Gateway</html>");
      } else if (mode === "error") {
        res.writeHead(500).end();
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end(body);
      }
    });
    await new Promise<void>((done) => jwks.listen(0, "127.0.0.1", done));
    jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
  });
  afterAll(async () => {
    for (const { keyward, dir, client } of instances) {
      client.close();
      await keyward.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
    jwks.closeAllConnections();
    await new Promise<void>((done) => jwks.close(() => done()));
  });

  /** An in-process keyward whose clock the test can move forward (`skew`). */
  async function start(): Promise<{
    ports: KeywardPorts;
    client: WireCheckClient;
    apiKey: string;
  }> {
    const dir = mkdtempSync(join(tmpdir(), "keyward-jwks-"));
    const database = join(dir, "keys.db");
    const db = openDatabase(database);
    const apiKey = new KeyRepository(db).create({ kind: "live", scopes: ["sources:read"] }).secret;
    db.close();
    const config = loadConfig({
      env: {},
      overrides: {
        database,
        listen: { host: "127.0.0.1", check: 0, admin: 0, http: 0 },
        // The shipped routes and scopes, admitting every credential kind.
        policy: scopeTablePolicyFile(),
        issuers: [{ issuer: ISSUER, audience: AUDIENCE, jwks_uri: jwksUrl }],
      },
    });
    const keyward = await createKeyward(config, {
      logger: createLogger({ level: "warn", destination: new LogCapture() }),
      now: () => Date.now() + skew,
    });
    const ports = await keyward.start();
    const client = new WireCheckClient(ports.check);
    instances.push({ keyward, dir, client });
    return { ports, client, apiKey };
  }

  const token = (key: SigningKey = signing, kid = key.kid) =>
    signToken(
      key,
      claims({ scope: "sources:read", iat: nowSeconds(), exp: nowSeconds() + 3_600 }),
      { kid },
    );

  it("denies JWTs 503 only while the key set has never loaded, and recovers when the IdP is fixed", async () => {
    published = [signing.jwk];
    mode = "garbage";
    const { ports, client, apiKey } = await start();
    expect(await decideOn(client, await token())).toBe("unavailable");
    expect(await decideOn(client, apiKey)).toBe("allow"); // API keys do not need the IdP
    expect((await probe(ports.http, "/readyz")).status).toBe(503);

    mode = "error";
    skew += 31_000; // past the per-issuer refetch cooldown
    expect(await decideOn(client, await token())).toBe("unavailable");

    mode = "ok";
    skew += 31_000;
    expect(await decideOn(client, await token())).toBe("allow");
    expect((await probe(ports.http, "/readyz")).status).toBe(200);
  }, 30_000);

  it("answers 503 (the 2 s fetch timeout fires, not undici's 300 s) while an IdP that never answers has never loaded, even when the garbage collector runs", async () => {
    // Node 20's AbortSignal.any() holds its AbortSignal.timeout() source
    // weakly (nodejs/node#57736): after a GC the timeout never fires, and
    // the fetch waits for undici's own 300 s header timeout.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    published = [signing.jwk];
    mode = "garbage";
    const { client } = await start();
    mode = "hang";
    skew += 31_000;
    const collector = setInterval(gc, 200);
    let got: string;
    try {
      got = await client
        .send(
          {
            method: "GET",
            path: "/api/v1/sources",
            headers: { authorization: `Bearer ${await token()}` },
          },
          // A hang guard far below undici's 300 s, far above the 2 s timeout
          // on any machine: an answer at all is the proof, not its speed.
          60_000,
        )
        .then(outcome, (error: { code?: number }) => `no answer in 60 s (gRPC ${error.code})`);
    } finally {
      clearInterval(collector);
      mode = "ok";
    }
    expect(got).toBe("unavailable");
  }, 120_000);

  it("keeps verifying with cached keys while the IdP is slow or broken, and picks up a new key once fixed", async () => {
    published = [signing.jwk];
    mode = "ok";
    skew = 0;
    const { client } = await start();
    expect(await decideOn(client, await token())).toBe("allow");

    for (const broken of ["garbage", "error", "slow"] as const) {
      mode = broken;
      skew += 31_000;
      // An unknown kid makes keyward refetch, which fails...
      let unknownSettled = false;
      const unknownKid = decideOn(client, await token(signing, `rotated-${broken}`), 15_000).then(
        (got) => {
          unknownSettled = true;
          return got;
        },
      );
      // ...while tokens signed with a cached key are answered without waiting
      // for it: with the IdP slower than the fetch timeout, the known token's
      // answer arrives while the refetch is still pending (order, not a clock).
      const known = await decideOn(client, await token(), 15_000);
      expect(known).toBe("allow");
      if (broken === "slow") expect(unknownSettled).toBe(false);
      expect(await unknownKid).toBe("invalid_token");
    }

    // The IdP is back, with a rotated signing key.
    const next = await newSigningKey("kid-2");
    published = [signing.jwk, next.jwk];
    mode = "ok";
    skew += 31_000;
    expect(await decideOn(client, await token(next))).toBe("allow");
    expect(await decideOn(client, await token())).toBe("allow");
  }, 30_000);

  it("fetches the JWKS at most once per cooldown however many invented kids arrive", async () => {
    published = [signing.jwk];
    mode = "ok";
    skew = 0;
    const { client } = await start();
    expect(await decideOn(client, await token())).toBe("allow");
    skew += 31_000;
    const before = requests;
    const answers = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => decideOn(client, await token(signing, `k${i}`))),
    );
    expect(new Set(answers)).toEqual(new Set(["invalid_token"]));
    expect(requests - before).toBeLessThanOrEqual(1);
  }, 30_000);
});
