import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";

export type Db = Database.Database;

/**
 * Numbered migrations, applied in order inside one transaction each and
 * recorded in `user_version`. Never edit a released entry: append a new one.
 */
const MIGRATIONS: readonly string[] = [
  // 1: the key table. Only the lookup and the SHA-256 of the whole key are
  // kept, never the secret. Times are epoch milliseconds.
  `CREATE TABLE keys (
     id           TEXT PRIMARY KEY,
     lookup       TEXT NOT NULL UNIQUE,
     hash         BLOB NOT NULL,
     kind         TEXT NOT NULL CHECK (kind IN ('live','user','agent','worker')),
     name         TEXT NOT NULL DEFAULT '',
     tenant       TEXT NOT NULL DEFAULT '',
     owner        TEXT NOT NULL DEFAULT '',
     scopes       TEXT NOT NULL DEFAULT '',
     experiment   TEXT,
     variation    TEXT,
     run          TEXT,
     status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','revoked')),
     created_at   INTEGER NOT NULL,
     expires_at   INTEGER,
     revoked_at   INTEGER,
     rotated_at   INTEGER,
     last_used_at INTEGER
   );
   CREATE INDEX keys_tenant ON keys (tenant, created_at);
   CREATE INDEX keys_run ON keys (experiment, variation, run) WHERE run IS NOT NULL;`,
  // 2: the admin audit trail (never a secret) and idempotent creates. An
  // idempotency record maps (actor, client key) to the key it minted and a
  // hash of the request, so a retry can be recognised; the secret itself is
  // not stored.
  `CREATE TABLE audit (
     seq      INTEGER PRIMARY KEY AUTOINCREMENT,
     at       INTEGER NOT NULL,
     actor    TEXT NOT NULL,
     action   TEXT NOT NULL,
     key_id   TEXT,
     tenant   TEXT,
     outcome  TEXT NOT NULL,
     detail   TEXT NOT NULL DEFAULT ''
   );
   CREATE INDEX audit_key ON audit (key_id);
   CREATE TABLE idempotency (
     actor        TEXT NOT NULL,
     idem_key     TEXT NOT NULL,
     request_hash BLOB NOT NULL,
     key_id       TEXT NOT NULL,
     created_at   INTEGER NOT NULL,
     PRIMARY KEY (actor, idem_key)
   );
   CREATE INDEX keys_owner ON keys (owner, created_at);`,
  // 3: replication. Every committed change to a key (by any writer: the admin
  // API, the CLI on the file, anything) is logged by triggers in the same
  // transaction; a primary streams the log to replicas. last_used_at is not
  // replicated. A replica records what it applied in replica_state, and the
  // presence of that row switches the triggers off: a replica's table only
  // ever changes by what it applies.
  `CREATE TABLE changes (
     seq    INTEGER PRIMARY KEY AUTOINCREMENT,
     key_id TEXT NOT NULL,
     at     INTEGER NOT NULL
   );
   CREATE TABLE replica_state (
     id          INTEGER PRIMARY KEY CHECK (id = 1),
     applied_seq INTEGER NOT NULL,
     applied_at  INTEGER NOT NULL
   );
   CREATE TRIGGER keys_log_insert AFTER INSERT ON keys
     WHEN NOT EXISTS (SELECT 1 FROM replica_state)
     BEGIN INSERT INTO changes (key_id, at) VALUES (NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
   CREATE TRIGGER keys_log_update AFTER UPDATE OF
       lookup, hash, kind, name, tenant, owner, scopes, experiment, variation, run,
       status, expires_at, revoked_at, rotated_at ON keys
     WHEN NOT EXISTS (SELECT 1 FROM replica_state)
     BEGIN INSERT INTO changes (key_id, at) VALUES (NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;
   CREATE TRIGGER keys_log_delete AFTER DELETE ON keys
     WHEN NOT EXISTS (SELECT 1 FROM replica_state)
     BEGIN INSERT INTO changes (key_id, at) VALUES (OLD.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;`,
  // 4: fleet usage. Each node's counts per key and hour are merged here (on a
  // primary: what every replica reported); code '' counts allowed requests,
  // any other code the denials with that code. usage_reporters remembers the
  // last batch merged from each reporting process, so a retried report is
  // not counted twice. Not replicated; pruned after the retention.
  `CREATE TABLE key_usage (
     key_id TEXT NOT NULL,
     hour   INTEGER NOT NULL,
     code   TEXT NOT NULL,
     count  INTEGER NOT NULL,
     PRIMARY KEY (key_id, hour, code)
   ) WITHOUT ROWID;
   CREATE INDEX key_usage_hour ON key_usage (hour);
   CREATE TABLE usage_reporters (
     reporter TEXT PRIMARY KEY,
     batch    INTEGER NOT NULL,
     at       INTEGER NOT NULL
   );`,
  // 5: the key lifecycle (issue 21). A suspended key has suspended_at set
  // (status stays 'active': suspension is reversible, revocation is not, and
  // a column needs no rebuild of the table's CHECK). During a rotation grace
  // the previous secret's SHA-256 (never the secret) verifies until
  // previous_expires_at. metadata is the key's JSON object (validated, at
  // most 4 KiB), or NULL; allowed_cidrs the space-separated networks a key
  // may be used from, or NULL for anywhere; rate_* the key's native rate
  // limit (NULL: none). The update trigger is recreated so that the new
  // replicated columns are logged too.
  `ALTER TABLE keys ADD COLUMN suspended_at INTEGER;
   ALTER TABLE keys ADD COLUMN previous_hash BLOB;
   ALTER TABLE keys ADD COLUMN previous_expires_at INTEGER;
   ALTER TABLE keys ADD COLUMN metadata TEXT;
   ALTER TABLE keys ADD COLUMN allowed_cidrs TEXT;
   ALTER TABLE keys ADD COLUMN rate_requests INTEGER;
   ALTER TABLE keys ADD COLUMN rate_per_seconds INTEGER;
   ALTER TABLE keys ADD COLUMN rate_burst INTEGER;
   DROP TRIGGER keys_log_update;
   CREATE TRIGGER keys_log_update AFTER UPDATE OF
       lookup, hash, kind, name, tenant, owner, scopes, experiment, variation, run,
       status, expires_at, revoked_at, rotated_at, suspended_at, previous_hash, previous_expires_at,
       metadata, allowed_cidrs, rate_requests, rate_per_seconds, rate_burst ON keys
     WHEN NOT EXISTS (SELECT 1 FROM replica_state)
     BEGIN INSERT INTO changes (key_id, at) VALUES (NEW.id, CAST(unixepoch('subsec') * 1000 AS INTEGER)); END;`,
];

/** Options for {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Open without write access (replicas, read-only inspection). Default false. */
  readonly readonly?: boolean;
  /**
   * How long a statement waits for another writer's lock, ms; default 5000
   * (the CLI). better-sqlite3 waits synchronously, so a server's connections
   * use short waits: a blocked event loop would stall every Check.
   */
  readonly busyTimeoutMs?: number;
}

/**
 * Opens (creating if needed) the SQLite key database with keyward's pragmas
 * and brings its schema up to date. The one place that knows how the file is
 * opened: WAL so readers (Check) never wait for the writer (admin), a busy
 * timeout so concurrent writers (CLI next to a running server) queue instead
 * of failing, and foreign keys on.
 */
export function openDatabase(file: string, options: OpenDatabaseOptions = {}): Db {
  if (file !== ":memory:" && !options.readonly) mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file, {
    readonly: options.readonly ?? false,
    fileMustExist: options.readonly ?? false,
  });
  db.pragma("busy_timeout = 5000");
  if (!options.readonly) {
    db.pragma("journal_mode = WAL");
    // FULL: a key whose secret was handed out must survive a crash or power cut.
    db.pragma("synchronous = FULL");
    db.pragma("foreign_keys = ON");
    migrate(db);
  }
  if (options.busyTimeoutMs !== undefined)
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs))}`);
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this keyward (${MIGRATIONS.length}); upgrade keyward`,
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version] as string);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
