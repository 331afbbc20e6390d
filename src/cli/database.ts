import { loadConfig } from "../config/load.js";

/**
 * The database a `keys` or `audit` command works on when `--db` is not
 * given, found the way `keyward serve` finds its own: `KEYWARD_DATABASE`,
 * else the `database:` of `--config` (or `KEYWARD_CONFIG`), else
 * `./data/keyward.db` relative to the current directory.
 */
export function resolveDatabase(flags: {
  db?: string | undefined;
  config?: string | undefined;
}): string {
  if (flags.db) return flags.db;
  return loadConfig({ file: flags.config || undefined }).database;
}
