import { type Stats, unwatchFile, watchFile } from "node:fs";
import type { Config } from "../config/schema.js";
import type { Decider } from "../decider/decider.js";
import type { Logger } from "../lib/log.js";
import type { CheckWorkers } from "../workers/pool.js";

/** Where a reload reads the configuration from, and what it watches. */
export interface ReloadSources {
  /**
   * Re-reads the configuration for a reload (SIGHUP or a changed file). The
   * CLI passes the same file + environment it started from; absent, a reload
   * re-reads the policy file only.
   */
  readonly reloadConfig?: () => Config;
  /** Files whose change triggers a reload (the config file); the policy file is always watched. */
  readonly watchFiles?: readonly string[];
  /** Poll interval of the file watchers, ms; default 1000. */
  readonly watchIntervalMs?: number;
}

/** Options for {@link createReloader}. */
export interface ReloaderOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly decider: Decider;
  readonly workers: CheckWorkers | undefined;
  readonly overrides: ReloadSources;
}

/** Reloads the policy file and the JWT issuers, on demand or when a watched file changes. */
export interface Reloader {
  /** The configuration in force: the start-up one with the issuers last reloaded. */
  readonly config: Config;
  /** One reload; reloads run one at a time, in order. Resolves true when the new one is in force. */
  reload(): Promise<boolean>;
  /** Starts watching the config and policy files; returns what stops it. */
  watch(): () => void;
}

/**
 * The reload path: read the configuration again, put its policy and issuers
 * in force in this process (both or neither), then hand it to every Check
 * worker. A refusal is logged and leaves the previous configuration in force.
 */
export function createReloader(options: ReloaderOptions): Reloader {
  const { decider, workers, overrides } = options;
  const log = options.logger.child({ name: "reload" });
  let config = options.config;
  let queue: Promise<boolean> = Promise.resolve(true);

  async function reloadOnce(): Promise<boolean> {
    let next: Config = config;
    try {
      if (overrides.reloadConfig) next = overrides.reloadConfig();
      if (await decider.decisions.reload(next)) config = { ...config, issuers: next.issuers };
    } catch (error) {
      log.error(
        { error: (error as Error).message },
        "reload refused; the previous configuration stays in force",
      );
      return false;
    }
    try {
      await workers?.reload(next);
    } catch (error) {
      // This process has taken it; a worker that could not keeps what it had.
      log.error(
        { error: (error as Error).message },
        "reload refused by a check worker, which keeps its previous configuration",
      );
      return false;
    }
    log.info({ policy: next.policy, issuers: next.issuers.length }, "configuration reloaded");
    return true;
  }

  const reloader: Reloader = {
    get config() {
      return config;
    },
    reload() {
      queue = queue.then(reloadOnce, reloadOnce);
      return queue;
    },
    watch() {
      // SIGHUP is wired by the CLI; these catch an edited file.
      const files = [
        ...(overrides.watchFiles ?? []),
        ...(options.config.policy ? [options.config.policy] : []),
      ];
      const watched: [string, (after: Stats, before: Stats) => void][] = [];
      for (const file of new Set(files)) {
        const listener = (after: Stats, before: Stats) => {
          if (after.mtimeMs !== before.mtimeMs) void reloader.reload();
        };
        const interval = overrides.watchIntervalMs ?? 1000;
        watchFile(file, { interval, persistent: false }, listener);
        watched.push([file, listener]);
      }
      return () => {
        for (const [file, listener] of watched) unwatchFile(file, listener);
      };
    },
  };
  return reloader;
}
