import type { RunBinding } from "../auth/identity.js";
import {
  type KeyUpdate,
  type ListKeysFilter,
  listQuery,
  type PageCursor,
  updated,
  writableColumns,
} from "./columns.js";
import type { Db } from "./db.js";
import { hashKey, keyLookup, mintKey, newKeyId } from "./format.js";
import { type CreateKeyInput, KeyInputError, validateKeyInput } from "./input.js";
import { type KeyRecord, type KeyRow, toRecord } from "./rows.js";

export type { KeyUpdate, ListKeysFilter, PageCursor } from "./columns.js";

/** A key together with its plaintext; returned once, by create and rotate only. */
export interface MintedKey {
  readonly key: KeyRecord;
  readonly secret: string;
}

/**
 * The key table as the admin API and the CLI change it: mint, rotate,
 * revoke, read and list. Every write is one statement or one immediate
 * transaction; a secret is returned once and never stored.
 */
export class KeyRepository {
  readonly #db: Db;
  readonly #now: () => number;
  readonly #byId;
  readonly #insert;
  readonly #setHash;
  readonly #revoke;
  readonly #suspend;
  readonly #update;
  readonly #resume;

  constructor(db: Db, now: () => number = Date.now) {
    this.#db = db;
    this.#now = now;
    this.#byId = db.prepare<[string], KeyRow>("SELECT * FROM keys WHERE id = ?");
    this.#insert = db.prepare(
      `INSERT INTO keys (id, lookup, hash, kind, name, tenant, owner, scopes, experiment, variation, run, status, created_at, expires_at, metadata, allowed_cidrs, rate_requests, rate_per_seconds, rate_burst)
       VALUES (@id, @lookup, @hash, @kind, @name, @tenant, @owner, @scopes, @experiment, @variation, @run, 'active', @created_at, @expires_at, @metadata, @allowed_cidrs, @rate_requests, @rate_per_seconds, @rate_burst)`,
    );
    this.#setHash = db.prepare(
      `UPDATE keys SET hash = @hash, rotated_at = @now,
         previous_hash = CASE WHEN @graceMs > 0 THEN hash END,
         previous_expires_at = CASE WHEN @graceMs > 0 THEN @now + @graceMs END
       WHERE id = @id`,
    );
    // Revocation ends the previous secret too: its hash is dropped.
    this.#revoke = db.prepare(
      `UPDATE keys SET status = 'revoked', revoked_at = ?, previous_hash = NULL, previous_expires_at = NULL
       WHERE id = ? AND status = 'active'`,
    );
    this.#update = db.prepare(
      `UPDATE keys SET name = @name, scopes = @scopes, expires_at = @expires_at, metadata = @metadata,
         allowed_cidrs = @allowed_cidrs, rate_requests = @rate_requests,
         rate_per_seconds = @rate_per_seconds, rate_burst = @rate_burst WHERE id = @id`,
    );
    this.#suspend = db.prepare(
      "UPDATE keys SET suspended_at = ? WHERE id = ? AND status = 'active' AND suspended_at IS NULL",
    );
    this.#resume = db.prepare(
      "UPDATE keys SET suspended_at = NULL WHERE id = ? AND status = 'active' AND suspended_at IS NOT NULL",
    );
  }

  /** Mints a key; the returned secret is never stored or shown again. */
  create(input: CreateKeyInput): MintedKey {
    validateKeyInput(input);
    const id = newKeyId();
    const secret = mintKey(input.kind, id);
    this.#insert.run({
      id,
      lookup: keyLookup(input.kind, id),
      hash: hashKey(secret),
      kind: input.kind,
      tenant: input.tenant ?? "",
      owner: input.owner ?? "",
      experiment: input.binding?.experiment ?? null,
      variation: input.binding?.variation ?? null,
      run: input.binding?.run ?? null,
      created_at: this.#now(),
      ...writableColumns(input),
    });
    return { key: this.#mustGet(id), secret };
  }

  /**
   * Replaces the key's secret, keeping its id and lookup. Without a grace the
   * old secret fails from the moment this returns; with `graceMs` it keeps
   * verifying (as the same key) for that long. Either way a secret older than
   * the one replaced (a grace still running) ends at once. A revoked key
   * cannot be rotated back to life.
   */
  rotate(id: string, graceMs = 0): MintedKey | undefined {
    if (!Number.isSafeInteger(graceMs) || graceMs < 0) {
      throw new KeyInputError(undefined, "graceSeconds must be a whole number, 0 or more");
    }
    return this.#db
      .transaction((): MintedKey | undefined => {
        const row = this.#byId.get(id);
        if (!row) return undefined;
        if (row.status === "revoked") throw new KeyInputError(undefined, `key ${id} is revoked`);
        const secret = mintKey(row.kind, row.id);
        this.#setHash.run({ hash: hashKey(secret), now: this.#now(), graceMs, id });
        return { key: this.#mustGet(id), secret };
      })
      .immediate();
  }

  /** Revokes a key; revoking a revoked key is a no-op. Undefined if unknown. */
  revoke(id: string): KeyRecord | undefined {
    this.#revoke.run(this.#now(), id);
    return this.get(id);
  }

  /**
   * Changes what a key is (name, scopes, expiry, metadata, networks), keeping its id
   * and secret; the result obeys every rule a new key does. A revoked key is
   * refused. Undefined if unknown.
   */
  update(id: string, changes: KeyUpdate): KeyRecord | undefined {
    return this.#db
      .transaction((): KeyRecord | undefined => {
        const row = this.#byId.get(id);
        if (!row) return undefined;
        if (row.status === "revoked") throw new KeyInputError(undefined, `key ${id} is revoked`);
        const next = updated(this.#toRecord(row), changes);
        validateKeyInput(next);
        this.#update.run({ id, ...writableColumns(next) });
        return this.#mustGet(id);
      })
      .immediate();
  }

  /**
   * Suspends a key: every later Check answers key_disabled until it is
   * resumed. Suspending a suspended key keeps its first suspension time; a
   * revoked key is refused (revocation is final). Undefined if unknown.
   */
  suspend(id: string): KeyRecord | undefined {
    return this.#whileNotRevoked(id, "suspended", () => this.#suspend.run(this.#now(), id));
  }

  /** Lifts a suspension; resuming an unsuspended key is a no-op. A revoked key is refused. */
  resume(id: string): KeyRecord | undefined {
    return this.#whileNotRevoked(id, "resumed", () => this.#resume.run(id));
  }

  get(id: string): KeyRecord | undefined {
    const row = this.#byId.get(id);
    return row ? this.#toRecord(row) : undefined;
  }

  /**
   * Newest first, `limit` at most, starting after `after` (the last key of
   * the previous page). Filters combine with AND.
   */
  list(filter: ListKeysFilter = {}, limit = 100, after?: PageCursor): KeyRecord[] {
    const { sql, params } = listQuery(filter, limit, this.#now(), after);
    return this.#db
      .prepare<Record<string, string | number>, KeyRow>(sql)
      .all(params)
      .map((row) => this.#toRecord(row));
  }

  /** The active keys bound to the run (of `tenant` only, when given). */
  runKeys(binding: RunBinding, tenant?: string): KeyRecord[] {
    return this.#db
      .prepare<[string, string, string], KeyRow>(
        "SELECT * FROM keys WHERE experiment = ? AND variation = ? AND run = ? AND status = 'active'",
      )
      .all(binding.experiment, binding.variation, binding.run)
      .filter((row) => tenant === undefined || row.tenant === tenant)
      .map((row) => this.#toRecord(row));
  }

  /** Revokes every active key bound to the run; returns the keys it revoked. */
  revokeRun(binding: RunBinding, tenant?: string): KeyRecord[] {
    return this.#db
      .transaction(() => {
        const keys = this.runKeys(binding, tenant);
        for (const key of keys) this.#revoke.run(this.#now(), key.id);
        return keys.map((key) => this.#mustGet(key.id));
      })
      .immediate();
  }

  #whileNotRevoked(id: string, done: string, change: () => void): KeyRecord | undefined {
    return this.#db
      .transaction((): KeyRecord | undefined => {
        const row = this.#byId.get(id);
        if (!row) return undefined;
        if (row.status === "revoked") {
          throw new KeyInputError(undefined, `key ${id} is revoked and cannot be ${done}`);
        }
        change();
        return this.#mustGet(id);
      })
      .immediate();
  }

  #mustGet(id: string): KeyRecord {
    const record = this.get(id);
    if (!record) throw new Error(`key ${id} vanished during its own write`);
    return record;
  }

  #toRecord(row: KeyRow): KeyRecord {
    return toRecord(row, this.#now());
  }
}
