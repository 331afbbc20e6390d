import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { stringify } from "yaml";
import { KeyService } from "../../src/gen/keyward/admin/v1/admin_pb.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { type ServeProcess, serve } from "./cli.js";
import { EnvoyCheckClient } from "./envoy-client.js";
import { scopeTablePolicyFile } from "./keyward.js";
import { freePort } from "./net.js";

/** Polls `probe` every `everyMs` until it returns true; throws `what` after `timeoutMs`. */
export async function waitUntil(
  what: string,
  probe: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The replicated columns of `keys` (not last_used_at), comparable across files. */
const ROWS_SQL = `SELECT id, lookup, hex(hash) AS hash, kind, name, tenant, owner, scopes, experiment,
  variation, run, status, created_at, expires_at, revoked_at, rotated_at, suspended_at,
  hex(previous_hash) AS previous_hash, previous_expires_at, metadata, allowed_cidrs,
  rate_requests, rate_per_seconds, rate_burst FROM keys ORDER BY id`;

/** Reads a database file without writing to it; `read` gets a connection closed afterwards. */
export function readDatabase<T>(file: string, read: (db: ReturnType<typeof openDatabase>) => T): T {
  const db = openDatabase(file, { readonly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** Every replicated column of every key, ordered by id. */
export function keyRows(file: string): Record<string, unknown>[] {
  return readDatabase(file, (db) => db.prepare<[], Record<string, unknown>>(ROWS_SQL).all());
}

/** The newest sequence of a primary's change log (0 when empty). */
export function newestSequence(file: string): number {
  return readDatabase(
    file,
    (db) =>
      (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").pluck().get() as
        | number
        | undefined) ?? 0,
  );
}

/** The sequence a replica has applied, or undefined before its first snapshot. */
export function appliedSequence(file: string): number | undefined {
  return readDatabase(
    file,
    (db) =>
      db.prepare("SELECT applied_seq FROM replica_state WHERE id = 1").pluck().get() as
        | number
        | undefined,
  );
}

/** Options for one `keyward serve` process of a {@link Cluster}. */
export interface NodeOptions {
  readonly name: string;
  readonly role: "primary" | "replica";
  readonly database: string;
  readonly env: NodeJS.ProcessEnv;
  /** Written as the YAML file passed with --config. */
  readonly config?: Record<string, unknown> | undefined;
  readonly dir: string;
}

/**
 * One keyward process that can be stopped and started again on the same
 * database file. The Check client follows the process across restarts
 * (a replica picks new ports each time; a primary keeps its admin port).
 */
export class KeywardNode {
  readonly name: string;
  readonly role: "primary" | "replica";
  readonly database: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #args: string[];
  #process: ServeProcess | undefined;
  #check: EnvoyCheckClient | undefined;

  constructor(options: NodeOptions) {
    this.name = options.name;
    this.role = options.role;
    this.database = options.database;
    // The shipped scope table admitting every credential kind (helpers/keyward.ts).
    this.#env = { KEYWARD_POLICY: scopeTablePolicyFile(), ...options.env };
    this.#args = [];
    if (options.config) {
      const file = join(options.dir, `${options.name}.yaml`);
      writeFileSync(file, stringify(options.config));
      this.#args = ["--config", file];
    }
  }

  get running(): boolean {
    return this.#process !== undefined;
  }

  get ports(): ServeProcess["ports"] {
    return this.#started().ports;
  }

  /** Check client of the running process. */
  get check(): EnvoyCheckClient {
    if (!this.#check) throw new Error(`${this.name} is not running`);
    return this.#check;
  }

  /** Everything the running process has logged (one JSON object a line). */
  logs(): string {
    return this.#started().stderr();
  }

  /** The log lines of the running process whose `msg` is `msg`. */
  logLines(msg: string): Record<string, unknown>[] {
    return this.logs()
      .split("\n")
      .filter((line) => line.includes(`"msg":"${msg}"`))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  async start(): Promise<this> {
    if (this.#process) throw new Error(`${this.name} is already running`);
    this.#process = await serve(this.#args, this.#env);
    this.#check = new EnvoyCheckClient(this.#process.ports.check);
    return this;
  }

  /** Stops the process (SIGTERM drains; SIGKILL is a crash); a no-op when stopped. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const running = this.#process;
    this.#check?.close();
    this.#check = undefined;
    this.#process = undefined;
    await running?.stop(signal);
  }

  #started(): ServeProcess {
    if (!this.#process) throw new Error(`${this.name} is not running`);
    return this.#process;
  }
}

/** Options for {@link createCluster}. */
export interface ClusterOptions {
  /** Replicas to define (named replica-1, replica-2, ...); none are started by createCluster. */
  readonly replicas: number;
  /** Primary config file fields (YAML), e.g. `{ replication: { retain_changes: 5 } }`. */
  readonly primaryConfig?: Record<string, unknown>;
  /** Config file fields (YAML) of every replica, e.g. `{ replication: { usage_interval: "1s" } }`. */
  readonly replicaConfig?: Record<string, unknown>;
  /** More environment for every process, e.g. NODE_OPTIONS. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * A primary and its replicas as real `keyward serve` processes on loopback,
 * each with its own SQLite file in a temporary directory, sharing a random
 * replication token. The primary's admin port is fixed up front so that
 * replicas find it again after it restarts.
 */
export interface Cluster {
  readonly dir: string;
  readonly token: string;
  /** The primary's admin URL, as replicas are configured with it. */
  readonly primaryUrl: string;
  readonly primary: KeywardNode;
  readonly replicas: readonly KeywardNode[];
  /** A keys:admin API key, minted on the primary's file before anything started. */
  readonly rootToken: string;
  /** KeyService client (gRPC) on the primary's admin port, as the root key. */
  readonly admin: Client<typeof KeyService>;
  /**
   * Defines one more replica (not started) with a fresh database file;
   * `primary` overrides its primary URL, `config` its config file fields.
   */
  addReplica(name: string, primary?: string, config?: Record<string, unknown>): KeywardNode;
  /** Waits until every running replica has applied the primary's newest change. */
  converged(timeoutMs?: number): Promise<number>;
  /** Stops every process (also after a failed test) and removes the files. */
  close(): Promise<void>;
}

export async function createCluster(options: ClusterOptions): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), "keyward-cluster-"));
  const token = randomBytes(24).toString("hex");
  const adminPort = await freePort();
  const primaryUrl = `http://127.0.0.1:${adminPort}`;
  const common = {
    KEYWARD_CHECK_PORT: "0",
    KEYWARD_HTTP_PORT: "0",
    KEYWARD_LISTEN_HOST: "127.0.0.1",
    KEYWARD_REPLICATION_TOKEN: token,
    ...options.env,
  };
  const primary = new KeywardNode({
    name: "primary",
    role: "primary",
    dir,
    database: join(dir, "primary.db"),
    config: options.primaryConfig,
    env: {
      ...common,
      KEYWARD_ROLE: "primary",
      KEYWARD_DATABASE: join(dir, "primary.db"),
      KEYWARD_ADMIN_PORT: String(adminPort),
    },
  });
  const rootDb = openDatabase(primary.database);
  const root = new KeyRepository(rootDb).create({
    kind: "live",
    name: "cluster root",
    owner: "root",
    scopes: ["keys:admin"],
  });
  rootDb.close();

  const replicas: KeywardNode[] = [];
  const addReplica = (
    name: string,
    primary = primaryUrl,
    config: Record<string, unknown> | undefined = options.replicaConfig,
  ) => {
    const replica = new KeywardNode({
      name,
      role: "replica",
      dir,
      database: join(dir, `${name}.db`),
      config,
      env: {
        ...common,
        KEYWARD_ROLE: "replica",
        KEYWARD_DATABASE: join(dir, `${name}.db`),
        KEYWARD_ADMIN_PORT: "0",
        KEYWARD_REPLICATION_PRIMARY: primary,
      },
    });
    replicas.push(replica);
    return replica;
  };
  for (let i = 1; i <= options.replicas; i++) addReplica(`replica-${i}`);

  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${root.secret}`);
    return next(req);
  };
  const admin = createClient(
    KeyService,
    createGrpcTransport({ baseUrl: primaryUrl, interceptors: [bearer] }),
  );

  return {
    dir,
    token,
    primaryUrl,
    primary,
    replicas,
    rootToken: root.secret,
    admin,
    addReplica,
    async converged(timeoutMs = 10_000) {
      let newest = 0;
      await waitUntil(
        "every running replica to apply the primary's newest change",
        () => {
          newest = newestSequence(primary.database);
          return replicas
            .filter((replica) => replica.running)
            .every((replica) => appliedSequence(replica.database) === newest);
        },
        timeoutMs,
      );
      return newest;
    },
    async close() {
      await Promise.allSettled([primary, ...replicas].map((node) => node.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP relay on loopback between a replica and its primary. `partition()`
 * makes every open connection go silent in both directions while keeping it
 * open, as a lost network path does (no FIN, no RST); connections opened
 * afterwards are relayed normally.
 */
export interface SilentRelay {
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  partition(): void;
  close(): Promise<void>;
}

export async function startSilentRelay(targetPort: number): Promise<SilentRelay> {
  const open = new Set<Socket>();
  const live = new Set<[Socket, Socket]>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect(targetPort, "127.0.0.1");
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on("error", () => socket.destroy());
      socket.once("close", () => open.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
    live.add([client, upstream]);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    partition() {
      for (const [client, upstream] of live) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        // Read and drop whatever still arrives, so neither side sees backpressure or a close.
        client.on("data", () => {}).resume();
        upstream.on("data", () => {}).resume();
      }
      live.clear();
    },
    close() {
      for (const socket of open) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
