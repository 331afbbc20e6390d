import { userInfo } from "node:os";
import { DEFAULTS } from "../config/schema.js";
import { AuditLog } from "../keys/audit.js";
import { openDatabase } from "../keys/db.js";
import { KeyInputError } from "../keys/input.js";
import { keyToJson, usageToJson } from "../keys/json.js";
import { KeyRepository } from "../keys/repository.js";
import { UsageStore } from "../keys/usage.js";
import { durationMs } from "../lib/duration.js";
import type { KeyBackend } from "./key-backend.js";

/** Works on the file directly; every change is audited in its own transaction, as the admin API does. */
export function localBackend(file: string): KeyBackend {
  const db = openDatabase(file);
  const store = new KeyRepository(db);
  const audit = new AuditLog(db);
  const usage = new UsageStore(db);
  const actor = `cli:${safeUser()}`;
  const audited = <T>(
    action: string,
    change: () => T,
    keysOf: (value: T) => { id: string; tenant: string }[],
  ): T =>
    db.transaction(() => {
      const value = change();
      audit.recordChange(actor, action, keysOf(value));
      return value;
    })();
  const found = <T>(id: string, value: T | undefined): T => {
    if (value === undefined) throw new Error(`key ${id} not found`);
    return value;
  };
  return {
    async create(input) {
      const minted = audited(
        "CreateKey",
        () => store.create(input),
        (m) => [m.key],
      );
      return { key: keyToJson(minted.key), secret: minted.secret };
    },
    async rotate(id, graceMs) {
      // On the file, the default keys.max_rotation_grace bounds the grace.
      const max = durationMs(DEFAULTS.maxRotationGrace) as number;
      if (graceMs > max) {
        throw new KeyInputError(undefined, `--grace: at most ${DEFAULTS.maxRotationGrace}`);
      }
      const minted = audited(
        "RotateKey",
        () => found(id, store.rotate(id, graceMs)),
        (m) => [m.key],
      );
      return { key: keyToJson(minted.key), secret: minted.secret };
    },
    async revoke(id) {
      return keyToJson(
        audited(
          "RevokeKey",
          () => found(id, store.revoke(id)),
          (k) => [k],
        ),
      );
    },
    async update(id, changes) {
      return keyToJson(
        audited(
          "UpdateKey",
          () => found(id, store.update(id, changes)),
          (k) => [k],
        ),
      );
    },
    async suspend(id) {
      return keyToJson(
        audited(
          "SuspendKey",
          () => found(id, store.suspend(id)),
          (k) => [k],
        ),
      );
    },
    async resume(id) {
      return keyToJson(
        audited(
          "ResumeKey",
          () => found(id, store.resume(id)),
          (k) => [k],
        ),
      );
    },
    async get(id) {
      return keyToJson(found(id, store.get(id)));
    },
    async usage(id, hours) {
      found(id, store.get(id));
      return usageToJson(usage.series(id, Date.now() - (hours - 1) * 3_600_000));
    },
    async list(filter, limit) {
      return store.list(filter, limit).map(keyToJson);
    },
    async revokeRun(binding) {
      return audited(
        "RevokeRunKeys",
        () => store.revokeRun(binding),
        (keys) => keys,
      ).map(keyToJson);
    },
    close() {
      db.close();
    },
  };
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return "unknown";
  }
}
