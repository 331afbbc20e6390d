import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { KeyRow as KeyRowMessage } from "../gen/keyward/replication/v1/replication_pb.js";
import { type Db, openDatabase } from "../keys/db.js";
import type { Logger } from "../lib/log.js";
import { gzipFrame, snapshotFrame } from "./frames.js";
import { REPLICATED_COLUMNS, type ReplicatedRow, rowToProto } from "./rows.js";

/** A full copy of the key table as of `sequence`, encoded once as the frames every replica gets. */
export interface SharedSnapshot {
  readonly sequence: number;
  readonly frames: readonly Buffer[];
  /** The same chunks gzip-compressed, for replicas that accept gzip (a third of the bytes). */
  readonly gzipFrames: readonly Buffer[];
  readonly bytes: number;
  readonly gzipBytes: number;
  readonly rows: number;
}

/** Options for {@link SnapshotCache}. */
export interface SnapshotCacheOptions {
  readonly database: string;
  readonly logger: Logger;
  /** Replicas receiving a snapshot at once; the others wait their turn. Default 16. */
  readonly maxConcurrent?: number;
  /**
   * A built snapshot is handed out again while it is at most this many
   * changes old (the replica then catches up from the log); default 1000.
   */
  readonly reuseWithinChanges?: number;
  /** A snapshot no replica asked for in this long is released; default 30 s. */
  readonly keepMs?: number;
}

const CHUNK_ROWS = 1000;

/**
 * Snapshots built once and shared: during a storm (a whole fleet restarting)
 * every replica that needs a snapshot gets the same encoded frames, built by
 * one read of the key table, instead of one read and one encode each. The
 * build yields to the event loop between chunks, so the admin API and the
 * change feed keep answering, and at most `maxConcurrent` replicas are sent
 * a snapshot at once (the others wait, kept alive by the feed's heartbeats).
 */
export class SnapshotCache {
  readonly #options: SnapshotCacheOptions;
  readonly #maxConcurrent: number;
  #current: SharedSnapshot | undefined;
  #building: Promise<SharedSnapshot> | undefined;
  #release: NodeJS.Timeout | undefined;
  #sending = 0;
  readonly #waiting: (() => void)[] = [];
  #built = 0;

  constructor(options: SnapshotCacheOptions) {
    this.#options = options;
    this.#maxConcurrent = options.maxConcurrent ?? 16;
  }

  /** Snapshots built so far (a storm should build one, or a few while changes keep coming). */
  get built(): number {
    return this.#built;
  }

  /** Replicas waiting for a snapshot slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Waits for a sending slot (or for `signal`); resolves with the release
   * function, or undefined when aborted while waiting.
   */
  async slot(signal: AbortSignal): Promise<(() => void) | undefined> {
    if (this.#sending >= this.#maxConcurrent) {
      const admitted = await new Promise<boolean>((resolve) => {
        const wake = () => {
          signal.removeEventListener("abort", aborted);
          resolve(true);
        };
        const aborted = () => {
          const at = this.#waiting.indexOf(wake);
          if (at >= 0) this.#waiting.splice(at, 1);
          resolve(false);
        };
        this.#waiting.push(wake);
        signal.addEventListener("abort", aborted, { once: true });
      });
      if (!admitted) return undefined;
    } else {
      this.#sending++;
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // The slot passes straight to the next waiter, or frees up.
      const next = this.#waiting.shift();
      if (next) next();
      else this.#sending--;
    };
  }

  /**
   * A snapshot no older than `reuseWithinChanges` behind `newest` whose
   * following changes are still in the log (`oldest`), built if there is none.
   */
  get(newest: number, oldest: number | undefined): Promise<SharedSnapshot> {
    const current = this.#current;
    const reuse = this.#options.reuseWithinChanges ?? 1000;
    if (
      current &&
      newest - current.sequence <= reuse &&
      (current.sequence === newest || (oldest !== undefined && oldest <= current.sequence + 1))
    ) {
      this.#keep();
      return Promise.resolve(current);
    }
    this.#building ??= this.#build().finally(() => {
      this.#building = undefined;
    });
    return this.#building;
  }

  close(): void {
    if (this.#release) clearTimeout(this.#release);
    this.#current = undefined;
  }

  async #build(): Promise<SharedSnapshot> {
    // A connection of its own: its read transaction spans the yields below
    // and sees one consistent table while commits go on.
    const db: Db = openDatabase(this.#options.database, { readonly: true });
    try {
      db.exec("BEGIN");
      const sequence =
        (db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").pluck().get() as
          | number
          | undefined) ?? 0;
      const frames: Buffer[] = [];
      const page = db.prepare<[string, number], ReplicatedRow>(
        `SELECT ${REPLICATED_COLUMNS} FROM keys WHERE id > ? ORDER BY id LIMIT ?`,
      );
      let rows: KeyRowMessage[] = [];
      let count = 0;
      let lastId = "";
      for (;;) {
        const next = page.all(lastId, CHUNK_ROWS);
        count += next.length;
        rows = next.map(rowToProto);
        if (next.length < CHUNK_ROWS) break;
        lastId = next[next.length - 1]?.id as string;
        frames.push(snapshotFrame(sequence, rows, frames.length === 0, false));
        // Let the admin API and the change feed run between chunks.
        await yieldToLoop();
      }
      frames.push(snapshotFrame(sequence, rows, frames.length === 0, true));
      db.exec("COMMIT");
      // Compressed once for every replica that accepts gzip, on libuv's pool.
      const gzipFrames = await Promise.all(frames.map(gzipFrame));
      const snapshot: SharedSnapshot = {
        sequence,
        frames,
        gzipFrames,
        rows: count,
        bytes: sizeOf(frames),
        gzipBytes: sizeOf(gzipFrames),
      };
      this.#built++;
      this.#options.logger.info(
        { sequence, rows: count, bytes: snapshot.bytes, gzipBytes: snapshot.gzipBytes },
        "snapshot built for sharing",
      );
      this.#current = snapshot;
      this.#keep();
      return snapshot;
    } finally {
      db.close();
    }
  }

  #keep(): void {
    if (this.#release) clearTimeout(this.#release);
    this.#release = setTimeout(() => {
      this.#current = undefined;
    }, this.#options.keepMs ?? 30_000);
    this.#release.unref();
  }
}

function sizeOf(frames: readonly Buffer[]): number {
  return frames.reduce((sum, f) => sum + f.length, 0);
}
