import { readFileSync, statSync } from "node:fs";
import { ConfigError } from "../config/errors.js";
import type { Config } from "../config/schema.js";
import { readReplicationToken } from "../replication/token.js";

/** The replication TLS files, read once; undefined when none are configured. */
export interface TlsFiles {
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly ca?: Buffer;
}

/** Reads `replication.tls`; a file that cannot be read is a one-line ConfigError naming the field. */
export function readTlsFiles(config: Config): TlsFiles | undefined {
  const tls = config.replication.tls;
  if (!tls) return undefined;
  const read = (field: "cert_file" | "key_file" | "ca_file"): Buffer | undefined => {
    const file = tls[field];
    if (!file) return undefined;
    try {
      return readFileSync(file);
    } catch (error) {
      throw new ConfigError(
        `config: replication.tls.${field}: cannot read ${file} (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  };
  const cert = read("cert_file");
  const key = read("key_file");
  const ca = read("ca_file");
  return { ...(cert && { cert }), ...(key && { key }), ...(ca && { ca }) };
}

/** The shared replication token of a primary or replica; a one-line ConfigError when unreadable. */
export function replicationTokenOf(config: Config): string | undefined {
  if (config.role === "single") return undefined;
  try {
    return readReplicationToken(config.replication.token, config.replication.token_file);
  } catch (error) {
    throw new ConfigError(`config: ${(error as Error).message}`);
  }
}

/**
 * Watches that the database file stays the one that was opened: if it is
 * removed or replaced underneath, writes would go to a file nobody will read.
 * Returns what is wrong, or undefined.
 */
export function databaseFileCheck(file: string): () => string | undefined {
  const openedInode = statSync(file).ino;
  return () => {
    try {
      return statSync(file).ino === openedInode ? undefined : "the database file was replaced";
    } catch (error) {
      // Only a file that is gone is a problem; a path we may no longer
      // stat (permissions) says nothing about the open descriptors.
      return (error as NodeJS.ErrnoException).code === "ENOENT"
        ? "the database file was removed"
        : undefined;
    }
  };
}
