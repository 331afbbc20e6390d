import { setImmediate as yieldToLoop } from "node:timers/promises";
import { type Db, openDatabase } from "../keys/db.js";
import type { Logger } from "../lib/log.js";
import { changeFrame, heartbeatFrame } from "./frames.js";
import type { CommitNotifier } from "./notifier.js";
import { REPLICATED_COLUMNS, type ReplicatedRow } from "./rows.js";

/** Options for {@link ChangeFeed}. */
export interface ChangeFeedOptions {
  /** The primary's database file; the feed reads it through a read-only connection of its own. */
  readonly database: string;
  readonly notifier: CommitNotifier;
  readonly logger: Logger;
  /** Every attached stream gets a heartbeat this often; default 1000 ms. */
  readonly heartbeatMs?: number;
  /** Ask replicas to confirm each change they apply (sync_replicas > 0). */
  readonly ackRequested?: boolean;
  /** Encoded changes kept in memory for replicas that resume a little behind; default 10,000. */
  readonly recentChanges?: number;
}

/** A replica's stream as the feed sees it: it is sent the heartbeats. */
export interface FeedListener {
  heartbeat(frame: Buffer): void;
}

/** Changes after a sequence, as frames; `through` is the sequence of the last one. */
export interface Catchup {
  readonly frames: readonly Buffer[];
  readonly through: number;
}

const READ_BATCH = 500;

/**
 * The primary's one change feed. A single reader wakes on every commit
 * (CommitNotifier), reads the new change-log entries and their rows once,
 * encodes each change once as a gRPC frame and keeps the newest in a
 * bounded ring; every replica's stream (watch.ts) pulls the same Buffers
 * from the ring at its own pace, writing the next batch only once its
 * previous one drained. The cost of a commit is one read and one encode
 * whatever the number of replicas; a slow replica holds only its cursor,
 * never delays the others, and when it falls out of the ring it catches up
 * from the log (or a snapshot), like a replica that reconnects.
 */
export class ChangeFeed {
  readonly #db: Db;
  readonly #log: Logger;
  readonly #notifier: CommitNotifier;
  readonly #heartbeatMs: number;
  readonly #ringSize: number;
  readonly #ack: boolean;
  readonly #abort = new AbortController();
  readonly #statements;
  /** The newest changes, oldest first, contiguous: #ring[i] has sequence #ringStart + i. */
  #ring: Buffer[] = [];
  #ringStart = 0;
  #sequence: number;
  readonly #waiters = new Set<() => void>();
  readonly #attached = new Set<FeedListener>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(options: ChangeFeedOptions) {
    this.#db = openDatabase(options.database, { readonly: true });
    this.#log = options.logger;
    this.#notifier = options.notifier;
    this.#heartbeatMs = options.heartbeatMs ?? 1000;
    this.#ringSize = options.recentChanges ?? 10_000;
    this.#ack = options.ackRequested ?? false;
    this.#statements = prepareFeed(this.#db);
    this.#sequence = this.newest();
    this.#ringStart = this.#sequence + 1;
  }

  /** The newest sequence the feed has encoded (replicas are brought up to it). */
  get sequence(): number {
    return this.#sequence;
  }

  /** Streams attached (live, catching up or waiting for a snapshot). */
  get streams(): number {
    return this.#attached.size;
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#attached.size === 0) return;
      const beat = heartbeatFrame(this.#sequence);
      for (const listener of this.#attached) listener.heartbeat(beat);
    }, this.#heartbeatMs);
    this.#timer.unref();
    this.#running ??= this.#loop();
  }

  /** The oldest sequence still in the change log, or undefined when it is empty. */
  oldest(): number | undefined {
    return this.#statements.oldest.get() ?? undefined;
  }

  /** The newest sequence ever committed (0 for a fresh file). */
  newest(): number {
    return this.#statements.newest.get() ?? 0;
  }

  /** Registers a stream for heartbeats; returns the detach. */
  attach(listener: FeedListener): () => void {
    this.#attached.add(listener);
    return () => this.#attached.delete(listener);
  }

  /** Resolves once {@link sequence} moves past `after` (at once if it has), or when `signal` aborts. */
  next(after: number, signal: AbortSignal): Promise<void> {
    if (this.#sequence > after || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.#waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /**
   * Up to `limit` changes after `from` (≤ {@link sequence}): from the ring
   * when it reaches back that far (shared frames), else read from the log
   * and encoded for this caller. Undefined when the log no longer holds
   * `from + 1` (compacted): the replica needs a snapshot.
   */
  changesAfter(from: number, limit = READ_BATCH): Catchup | undefined {
    if (from >= this.#sequence) return { frames: [], through: from };
    const end = Math.min(this.#sequence, from + limit);
    if (from + 1 >= this.#ringStart && this.#ring.length > 0) {
      const frames = this.#ring.slice(from + 1 - this.#ringStart, end + 1 - this.#ringStart);
      return { frames, through: from + frames.length };
    }
    const rows = this.#statements.changes.all(from, this.#sequence, limit);
    if (rows.length === 0 || rows[0]?.seq !== from + 1) return undefined;
    const frames = rows.map((change) =>
      changeFrame(change.seq, change.key_id, this.#statements.row.get(change.key_id), this.#ack),
    );
    return { frames, through: rows[rows.length - 1]?.seq as number };
  }

  async close(): Promise<void> {
    this.#abort.abort();
    this.#wake();
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
    this.#db.close();
  }

  async #loop(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      try {
        await this.#pump();
      } catch (error) {
        this.#log.warn({ err: error }, "change feed read failed; retrying on the next commit");
      }
      await this.#notifier.wait(this.#heartbeatMs, this.#abort.signal);
    }
  }

  /**
   * Reads and encodes the changes committed since the last pump, a batch at
   * a time with a turn of the event loop between batches (so the streams
   * drain and the admin API answers during a bulk write), then wakes the
   * streams waiting for them.
   */
  async #pump(): Promise<void> {
    for (;;) {
      const { changes, row } = this.#statements;
      const batch = changes.all(this.#sequence, Number.MAX_SAFE_INTEGER, READ_BATCH);
      if (batch.length === 0) return;
      if (batch[0]?.seq !== this.#sequence + 1) {
        // Compacted past the feed itself: a stream behind it gets a snapshot.
        this.#log.warn({ at: this.#sequence }, "change feed fell behind the compacted log");
        this.#ring = [];
        this.#ringStart = batch[0]?.seq as number;
      }
      for (const change of batch) {
        this.#ring.push(changeFrame(change.seq, change.key_id, row.get(change.key_id), this.#ack));
        this.#sequence = change.seq;
      }
      if (this.#ring.length > this.#ringSize + READ_BATCH) {
        const drop = this.#ring.length - this.#ringSize;
        this.#ring = this.#ring.slice(drop);
        this.#ringStart += drop;
      }
      this.#wake();
      await yieldToLoop();
    }
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}

function prepareFeed(db: Db) {
  return {
    oldest: db.prepare<[], number>("SELECT min(seq) FROM changes").pluck() as unknown as {
      get(): number | undefined;
    },
    newest: db
      .prepare<[], number>("SELECT seq FROM sqlite_sequence WHERE name = 'changes'")
      .pluck() as unknown as { get(): number | undefined },
    changes: db.prepare<[number, number, number], { seq: number; key_id: string }>(
      "SELECT seq, key_id FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
    ),
    row: db.prepare<[string], ReplicatedRow>(`SELECT ${REPLICATED_COLUMNS} FROM keys WHERE id = ?`),
  };
}
