import cluster, { type Worker } from "node:cluster";
import { fileURLToPath } from "node:url";
import type { Config } from "../config/schema.js";
import type { UsageEntry } from "../keys/usage.js";
import type { Logger } from "../lib/log.js";
import type { TopKeysReport } from "../observability/top-keys.js";
import { type FromWorker, isProtocolMessage, type MetricsJson, type ToWorker } from "./messages.js";

/** The worker process's script: the compiled sibling of this module. */
const ENTRY = fileURLToPath(new URL("./entry.js", import.meta.url));

/** How long a worker that exited waits before it is replaced. */
const RESPAWN_DELAY_MS = 1000;
/** How long a reload or a metrics scrape waits for a worker's answer. */
const ANSWER_TIMEOUT_MS = 10_000;
/** How long a worker may take to listen (its first JWKS fetch included) before it is killed. */
const START_TIMEOUT_MS = 60_000;
/** How long `close` lets workers drain before it kills them. */
const CLOSE_TIMEOUT_MS = 10_000;

interface Slot {
  worker: Worker;
  listening: boolean;
}

/**
 * The main process's side of `workers` > 1: forks that many Check workers
 * with node:cluster, which share the one Check port (the main process
 * accepts connections and hands them out in turn). A worker that exits is
 * replaced after a second; reloads and metrics scrapes go to every worker.
 *
 * Every worker listens with the configuration's own port, so that they share
 * one listening socket: with port 0 that socket's port is chosen once, and
 * lasts as long as one worker holds it.
 */
export class CheckWorkers {
  readonly #slots = new Map<number, Slot>();
  /** Answers awaited from workers, by request id. */
  readonly #pending = new Map<number, (answer: FromWorker) => void>();
  readonly #respawns = new Set<NodeJS.Timeout>();
  #nextId = 0;
  /** Set once every worker of the first start listens: from then on, a worker that exits is replaced. */
  #started = false;
  #closing = false;

  /**
   * @param onUsage takes the key usage each worker reports (every second):
   *   the main process merges it into its own tally.
   */
  constructor(
    private config: Config,
    private readonly logger: Logger,
    private readonly onUsage: (entries: UsageEntry[]) => void = () => undefined,
  ) {}

  /** Forks every worker; resolves with the Check port once all listen, rejects if one fails first. */
  async start(): Promise<number> {
    cluster.setupPrimary({ exec: ENTRY, args: [], execArgv: process.execArgv });
    try {
      const ports = await Promise.all(
        Array.from({ length: this.config.workers }, (_, slot) => this.#fork(slot + 1)),
      );
      this.#started = true;
      return ports[0] as number;
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** How many workers listen now, of how many configured. */
  status(): { listening: number; expected: number } {
    let listening = 0;
    for (const slot of this.#slots.values()) if (slot.listening) listening++;
    return { listening, expected: this.config.workers };
  }

  /** Hands a reloaded configuration to every worker; throws naming the first that refused it. */
  async reload(config: Config): Promise<void> {
    this.config = config;
    const answers = await this.#askAll((id) => ({ kw: "reload", id, config }));
    for (const answer of answers) {
      if (answer.kw === "reloaded" && answer.error) throw new Error(answer.error);
    }
  }

  /** Every listening worker's metrics (a worker that does not answer in time is left out). */
  async metrics(): Promise<MetricsJson[]> {
    const answers = await this.#askAll((id) => ({ kw: "metrics", id }));
    return answers.flatMap((answer) => (answer.kw === "metrics" ? [answer.metrics] : []));
  }

  /** Every listening worker's busiest keys (a worker that does not answer in time is left out). */
  async topKeys(limit: number): Promise<TopKeysReport[]> {
    const answers = await this.#askAll((id) => ({ kw: "topKeys", id, limit }));
    return answers.flatMap((answer) =>
      answer.kw === "topKeys" && answer.report ? [answer.report] : [],
    );
  }

  /** Tells every worker to drain and waits for them to exit (killing any that take too long). */
  async close(): Promise<void> {
    this.#closing = true;
    for (const timer of this.#respawns) clearTimeout(timer);
    this.#respawns.clear();
    await Promise.all(
      [...this.#slots.values()].map(
        ({ worker, listening }) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            const force = setTimeout(() => worker.kill("SIGKILL"), CLOSE_TIMEOUT_MS);
            worker.once("exit", () => {
              clearTimeout(force);
              resolve();
            });
            // One still starting may not hear messages yet; it stops on SIGTERM
            // (nothing to drain) as a listening one does on this message.
            if (listening) send(worker, { kw: "close" });
            else worker.process.kill("SIGTERM");
          }),
      ),
    );
  }

  #fork(slot: number): Promise<number> {
    const worker = cluster.fork();
    const entry: Slot = { worker, listening: false };
    this.#slots.set(slot, entry);
    return new Promise<number>((resolve, reject) => {
      let failure: string | undefined;
      const slow = setTimeout(() => {
        failure = `not listening after ${START_TIMEOUT_MS / 1000} s`;
        worker.kill("SIGKILL");
      }, START_TIMEOUT_MS);
      worker.on("message", (message: unknown) => {
        if (!isProtocolMessage(message)) return;
        const answer = message as FromWorker;
        if (answer.kw === "waiting") {
          send(worker, { kw: "start", slot, config: this.config });
        } else if (answer.kw === "listening") {
          clearTimeout(slow);
          entry.listening = true;
          resolve(answer.port);
        } else if (answer.kw === "failed") {
          failure = answer.message;
        } else if (answer.kw === "usage") {
          this.onUsage(answer.entries);
        } else {
          this.#pending.get(answer.id)?.(answer);
        }
      });
      worker.once("exit", (code, signal) => {
        clearTimeout(slow);
        if (this.#slots.get(slot) === entry) this.#slots.delete(slot);
        if (!entry.listening) {
          reject(
            new Error(
              `check worker ${slot} stopped before listening: ${failure ?? `exit ${signal ?? code}`}`,
            ),
          );
        }
        // A worker that never listened during the first start fails that
        // start (the caller reports it); any other exit is replaced.
        if (this.#closing || (!this.#started && !entry.listening)) return;
        this.logger.error(
          { worker: slot, code, signal, ...(failure && { error: failure }) },
          "check worker exited; starting another",
        );
        const timer = setTimeout(() => {
          this.#respawns.delete(timer);
          this.#fork(slot).then(
            () => this.logger.info({ worker: slot }, "check worker replaced"),
            // Its exit was logged, and another attempt is scheduled.
            () => undefined,
          );
        }, RESPAWN_DELAY_MS);
        this.#respawns.add(timer);
      });
    });
  }

  /** Sends one request to every listening worker and collects the answers that arrive in time. */
  async #askAll(request: (id: number) => ToWorker): Promise<FromWorker[]> {
    const asked = [...this.#slots.values()].filter((slot) => slot.listening);
    const answers = await Promise.all(
      asked.map(
        ({ worker }) =>
          new Promise<FromWorker | undefined>((resolve) => {
            const id = ++this.#nextId;
            const done = (answer: FromWorker | undefined) => {
              clearTimeout(timer);
              worker.off("exit", gone);
              this.#pending.delete(id);
              resolve(answer);
            };
            const gone = () => done(undefined);
            const timer = setTimeout(gone, ANSWER_TIMEOUT_MS);
            worker.once("exit", gone);
            this.#pending.set(id, done);
            send(worker, request(id));
          }),
      ),
    );
    return answers.filter((answer): answer is FromWorker => answer !== undefined);
  }
}

function send(worker: Worker, message: ToWorker): void {
  // A worker that has just died cannot take it; its exit is handled elsewhere.
  if (worker.isConnected()) worker.send(message);
}
