import type { RunBinding } from "../auth/identity.js";
import type { CreateKeyInput } from "../keys/input.js";
import type { KeyJson, UsageHourJson } from "../keys/json.js";
import type { KeyUpdate, ListKeysFilter } from "../keys/repository.js";

/** A minted key as the CLI prints it: the key and its secret, once. */
export interface Minted {
  key: KeyJson;
  secret: string;
}

/**
 * Where `keys` commands act: directly on a database file (bootstrap, and
 * operators on the box: local-backend.ts) or through a running admin API
 * (remote-backend.ts). Both print the same JSON.
 */
export interface KeyBackend {
  create(input: CreateKeyInput, idempotencyKey: string | undefined): Promise<Minted>;
  /** `graceMs`: how long the previous secret keeps working (0: not at all). */
  rotate(id: string, graceMs: number): Promise<Minted>;
  revoke(id: string): Promise<KeyJson>;
  suspend(id: string): Promise<KeyJson>;
  update(id: string, changes: KeyUpdate): Promise<KeyJson>;
  resume(id: string): Promise<KeyJson>;
  get(id: string): Promise<KeyJson>;
  /** The key's hourly use over the last `hours` hours, oldest first. */
  usage(id: string, hours: number): Promise<UsageHourJson[]>;
  list(filter: ListKeysFilter, limit: number): Promise<KeyJson[]>;
  revokeRun(binding: RunBinding): Promise<KeyJson[]>;
  close(): void;
}
