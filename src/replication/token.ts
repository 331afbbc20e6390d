import { hash, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";

/** Minimum length of a replication token: it is a shared secret, not a password. */
export const MIN_TOKEN_LENGTH = 32;

/**
 * Reads the replication token: the KEYWARD_REPLICATION_TOKEN value if set,
 * else the first line of the token file. Throws a one-line reason.
 */
export function readReplicationToken(
  fromEnv: string | undefined,
  file: string | undefined,
): string {
  let token = fromEnv;
  if (!token && file) {
    try {
      token = readFileSync(file, "utf8").split("\n")[0]?.trim();
    } catch (error) {
      throw new Error(
        `replication.token_file: cannot read ${file} (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  }
  if (!token)
    throw new Error(
      "replication.token_file: a replication token is required (or KEYWARD_REPLICATION_TOKEN)",
    );
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new Error(
      `replication.token_file: the token must be at least ${MIN_TOKEN_LENGTH} characters`,
    );
  }
  return token;
}

/** Constant-time check of a presented `authorization` header against the token. */
export function tokenMatches(authorization: string | null, token: string): boolean {
  const presented = authorization?.startsWith("Bearer ") ? authorization.slice(7) : "";
  return timingSafeEqual(hash("sha256", presented, "buffer"), hash("sha256", token, "buffer"));
}
