import type { Db } from "../keys/db.js";

/** How often the primary looks for commits made outside this process (e.g. the CLI on the file). */
export const COMMIT_WATCH_INTERVAL_MS = 50;

/**
 * Wakes the replication streams when a change commits. In-process writers
 * (the admin API) call `notify()` right after they commit; commits from other
 * processes are seen through `PRAGMA data_version` on a connection of our own,
 * checked every few milliseconds. Replicas are never polled: they receive.
 */
export class CommitNotifier {
  readonly #waiters = new Set<() => void>();
  readonly #timer: NodeJS.Timeout;
  #version: number;

  constructor(private readonly db: Db) {
    this.#version = this.#read();
    this.#timer = setInterval(() => {
      const version = this.#read();
      if (version !== this.#version) {
        this.#version = version;
        this.notify();
      }
    }, COMMIT_WATCH_INTERVAL_MS);
    this.#timer.unref();
  }

  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /** Resolves on the next commit, after `timeoutMs`, or when `signal` aborts; true when a commit woke it. */
  wait(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (committed: boolean) => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        signal.removeEventListener("abort", aborted);
        resolve(committed);
      };
      const wake = () => done(true);
      const aborted = () => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.#waiters.add(wake);
      signal.addEventListener("abort", aborted, { once: true });
    });
  }

  close(): void {
    clearInterval(this.#timer);
    this.notify();
  }

  #read(): number {
    try {
      return this.db.pragma("data_version", { simple: true }) as number;
    } catch {
      return this.#version;
    }
  }
}
