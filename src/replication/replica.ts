import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Change, Snapshot } from "../gen/keyward/replication/v1/replication_pb.js";
import { ReplicationService } from "../gen/keyward/replication/v1/replication_pb.js";
import type { Db } from "../keys/db.js";
import type { Logger } from "../lib/log.js";
import { AckSender } from "./acks.js";
import { ReplicaWriter } from "./replica-writer.js";
import { wideWindowSessions } from "./window.js";

/** Options for {@link ReplicaSync}. */
export interface ReplicaSyncOptions {
  /** The primary's admin URL, e.g. http://keyward-primary:9192. */
  readonly primary: string;
  readonly token: string;
  /** A writable connection to the replica's own database file. */
  readonly db: Db;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Reconnect backoff: first delay and cap, ms. Defaults 100 and 5000. */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
  /**
   * A stream on which nothing (not even a heartbeat, sent every second) has
   * arrived for this long is presumed dead and reconnected; default 5000 ms.
   * Catches a link that goes silent without closing.
   */
  readonly idleTimeoutMs?: number;
  /** TLS for an https:// primary: the CA to trust, and a client certificate for mTLS. */
  readonly tls?: {
    readonly ca?: Buffer | undefined;
    readonly cert?: Buffer | undefined;
    readonly key?: Buffer | undefined;
  };
}

/** What a replica knows about its own freshness (for readiness and metrics). */
export interface ReplicaStatus {
  /** A snapshot has been applied at some point: the replica can decide. */
  readonly synced: boolean;
  readonly connected: boolean;
  readonly appliedSequence: number;
  /** Newest sequence the primary has announced. */
  readonly primarySequence: number;
  /** Epoch ms when the primary was last heard (any message), or undefined. */
  readonly lastHeardAt: number | undefined;
  readonly reconnects: number;
  readonly snapshots: number;
}

/**
 * Keeps a replica's database in step with the primary: calls Watch with the
 * last applied sequence, applies the snapshot or changes in order, each in a
 * transaction that also records the sequence, and reconnects with capped
 * exponential backoff and jitter when the stream ends. While the primary is
 * away the replica keeps answering from what it has.
 */
export class ReplicaSync {
  readonly #options: ReplicaSyncOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #abort = new AbortController();
  readonly #writer: ReplicaWriter;
  #running: Promise<void> | undefined;
  #connected = false;
  #primarySequence = 0;
  #lastHeardAt: number | undefined;
  #reconnects = 0;
  #snapshots = 0;
  readonly #listeners = new Set<(sequence: number) => void>();
  readonly #acks: AckSender;

  constructor(options: ReplicaSyncOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#acks = new AckSender({
      client: createClient(ReplicationService, primaryTransport(options.primary, options.tls)),
      token: options.token,
      logger: options.logger,
      signal: this.#abort.signal,
    });
    this.#writer = new ReplicaWriter(options.db, this.#now);
  }

  start(): void {
    this.#running ??= this.#loop();
  }

  status(): ReplicaStatus {
    const applied = this.#applied();
    return {
      synced: applied !== undefined,
      connected: this.#connected,
      appliedSequence: applied ?? 0,
      primarySequence: Math.max(this.#primarySequence, applied ?? 0),
      lastHeardAt: this.#lastHeardAt,
      reconnects: this.#reconnects,
      snapshots: this.#snapshots,
    };
  }

  /** Called after each applied change or snapshot with the new sequence. */
  onApplied(listener: (sequence: number) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#running;
  }

  #applied(): number | undefined {
    return this.#writer.applied();
  }

  async #loop(): Promise<void> {
    const { initial, max } = this.#options.backoffMs ?? { initial: 100, max: 5000 };
    const idleTimeoutMs = this.#options.idleTimeoutMs ?? 5000;
    let delay = initial;
    while (!this.#abort.signal.aborted) {
      const from = this.#applied() ?? 0;
      // A fresh transport (so a fresh HTTP/2 session) per attempt: after a
      // silent link the old session is dead even if its socket never closed.
      const client = createClient(
        ReplicationService,
        primaryTransport(this.#options.primary, this.#options.tls),
      );
      // One controller per stream, aborted by close() or by the watchdog that
      // fires when nothing (not even a heartbeat) arrived for idleTimeoutMs.
      const stream = new AbortController();
      const stopStream = () => stream.abort();
      this.#abort.signal.addEventListener("abort", stopStream, { once: true });
      let silent = false;
      const onSilence = () => {
        silent = true;
        stream.abort();
      };
      let watchdog = setTimeout(onSilence, idleTimeoutMs);
      try {
        const messages = client.watch(
          { fromSequence: BigInt(from) },
          { signal: stream.signal, headers: { authorization: `Bearer ${this.#options.token}` } },
        );
        for await (const message of messages) {
          clearTimeout(watchdog);
          watchdog = setTimeout(onSilence, idleTimeoutMs);
          if (!this.#connected) {
            this.#connected = true;
            this.#log.info({ primary: this.#options.primary, from }, "connected to primary");
          }
          delay = initial;
          this.#lastHeardAt = this.#now();
          const event = message.event;
          if (event.case === "snapshot") this.#applySnapshot(event.value);
          else if (event.case === "change") this.#applyChange(event.value);
          else if (event.case === "heartbeat") this.#primarySequence = Number(event.value.sequence);
        }
      } catch (error) {
        if (this.#abort.signal.aborted) break;
        if (silent) {
          this.#log.warn(
            { primary: this.#options.primary, idleTimeoutMs },
            "primary went silent; reconnecting",
          );
        } else {
          this.#log.warn(
            { err: error, primary: this.#options.primary, retryInMs: delay },
            "replication stream failed",
          );
        }
      } finally {
        clearTimeout(watchdog);
        this.#abort.signal.removeEventListener("abort", stopStream);
        this.#writer.abandon();
      }
      if (this.#connected)
        this.#log.warn({ primary: this.#options.primary }, "disconnected from primary");
      this.#connected = false;
      if (this.#abort.signal.aborted) break;
      this.#reconnects++;
      // Full jitter keeps a fleet of replicas from reconnecting in lockstep.
      await sleep(delay / 2 + Math.random() * (delay / 2), this.#abort.signal);
      delay = Math.min(delay * 2, max);
    }
  }

  #applySnapshot(snapshot: Snapshot): void {
    const sequence = this.#writer.applySnapshot(snapshot);
    if (sequence === undefined) return;
    this.#snapshots++;
    this.#primarySequence = Math.max(this.#primarySequence, sequence);
    this.#log.info({ sequence, snapshots: this.#snapshots }, "snapshot applied");
    this.#emit(sequence);
  }

  #applyChange(change: Change): void {
    const sequence = this.#writer.applyChange(change);
    this.#primarySequence = Math.max(this.#primarySequence, sequence);
    this.#emit(sequence);
    if (change.ackRequested) this.#acks.ack(sequence);
  }

  #emit(sequence: number): void {
    for (const listener of this.#listeners) listener(sequence);
  }
}

/** A gRPC transport to the primary's admin port (TLS and a client certificate when given). */
export function primaryTransport(primary: string, tls: ReplicaSyncOptions["tls"]) {
  return createGrpcTransport({
    baseUrl: primary,
    // Wide HTTP/2 windows, so a snapshot streams without waiting on round trips (window.ts).
    sessionManager: wideWindowSessions(primary, {
      ...(tls?.ca && { ca: tls.ca }),
      ...(tls?.cert && { cert: tls.cert, key: tls.key }),
    }),
  });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
