import { existsSync } from "node:fs";
import { resolveDatabase } from "./database.js";
import { UsageError } from "./errors.js";
import type { KeyBackend } from "./key-backend.js";

export type { KeyBackend, Minted } from "./key-backend.js";

/** The flags that choose a backend. */
export interface BackendFlags {
  /** The database file; without it, the server's (database.ts). */
  readonly db?: string | undefined;
  /** The server's configuration, to find its database. */
  readonly config?: string | undefined;
  readonly server?: string | undefined;
  readonly token?: string | undefined;
}

/**
 * Opens the backend the flags name. A database file must exist unless the
 * command creates a key (the bootstrap), so that a typo in `--db` or a
 * command run from another directory says so instead of answering from a
 * new, empty file.
 */
export async function openBackend(
  flags: BackendFlags,
  mayCreateDatabase: boolean,
): Promise<KeyBackend> {
  // Each backend loads only when it is used: `keys` on a local file should
  // start as fast as possible, and `--server` needs no SQLite.
  if (flags.server) {
    return (await import("./remote-backend.js")).remoteBackend(flags.server, flags.token);
  }
  const file = resolveDatabase(flags);
  if (!mayCreateDatabase && !existsSync(file)) {
    throw new UsageError(
      `--db: no key database at ${file} (pass --db FILE or --config FILE, or run where the server runs)`,
    );
  }
  return (await import("./local-backend.js")).localBackend(file);
}
