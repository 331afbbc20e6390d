import type { Db } from "./db.js";

/** One admin action as the audit trail records it. Never holds a secret. */
export interface AuditEntry {
  readonly seq: number;
  /** Epoch ms. */
  readonly at: number;
  /** Who acted: `key:<id>`, `jwt:<issuer>#<subject>`, `cli:<user>` or `anonymous`. */
  readonly actor: string;
  /** The RPC name, e.g. CreateKey. */
  readonly action: string;
  readonly keyId: string | null;
  readonly tenant: string | null;
  /** `ok`, or the error code the action ended with. */
  readonly outcome: string;
  readonly detail: string;
}

export type AuditInput = Omit<AuditEntry, "seq" | "at"> & { readonly at?: number };

/** The append-only audit table. Writes join whatever transaction is open on the connection. */
export class AuditLog {
  readonly #insert;
  readonly #list;

  constructor(
    db: Db,
    private readonly now: () => number = Date.now,
  ) {
    this.#insert = db.prepare(
      "INSERT INTO audit (at, actor, action, key_id, tenant, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
    );
    this.#list = db.prepare<
      {
        keyId: string | null;
        tenant: string | null;
        before: number | null;
        outcome: string | null;
        exclude: string;
        limit: number;
      },
      Record<string, unknown>
    >(
      `SELECT seq, at, actor, action, key_id AS keyId, tenant, outcome, detail FROM audit
       WHERE (@keyId IS NULL OR key_id = @keyId) AND (@tenant IS NULL OR tenant = @tenant)
         AND (@before IS NULL OR seq < @before) AND (@outcome IS NULL OR outcome = @outcome)
         AND action NOT IN (SELECT value FROM json_each(@exclude))
       ORDER BY seq DESC LIMIT @limit`,
    );
  }

  record(entry: AuditInput): void {
    this.#insert.run(
      entry.at ?? this.now(),
      entry.actor,
      entry.action,
      entry.keyId,
      entry.tenant,
      entry.outcome,
      entry.detail.slice(0, 500),
    );
  }

  /**
   * Records a completed change: one `ok` row per key it touched, or one row
   * without a key when it touched none.
   */
  recordChange(
    actor: string,
    action: string,
    keys: readonly { readonly id: string; readonly tenant: string }[],
  ): void {
    if (keys.length === 0) {
      this.record({ actor, action, keyId: null, tenant: null, outcome: "ok", detail: "" });
    }
    for (const key of keys) {
      this.record({ actor, action, keyId: key.id, tenant: key.tenant, outcome: "ok", detail: "" });
    }
  }

  /**
   * Newest first; `before` pages on (entries with a smaller seq), `outcome`
   * keeps one outcome only, `excludeActions` leaves those actions out.
   */
  list(
    filter: {
      keyId?: string;
      tenant?: string;
      before?: number;
      outcome?: string;
      excludeActions?: readonly string[];
    } = {},
    limit = 100,
  ): AuditEntry[] {
    return this.#list.all({
      keyId: filter.keyId ?? null,
      tenant: filter.tenant ?? null,
      before: filter.before ?? null,
      outcome: filter.outcome ?? null,
      exclude: JSON.stringify(filter.excludeActions ?? []),
      limit,
    }) as unknown as AuditEntry[];
  }
}
