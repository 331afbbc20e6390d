import type { Command } from "commander";
import ms from "ms";
import { openDatabase } from "../keys/db.js";
import { KEY_KINDS } from "../keys/format.js";
import { keyToJson, mintedToJson } from "../keys/json.js";
import {
  KeyInputError,
  type KeyRecord,
  KeyStore,
  type ListKeysFilter,
  type MintedKey,
} from "../keys/store.js";
import type { KeyKind } from "../pipeline/identity.js";
import { UsageError } from "./errors.js";

/** Lifetime of user and agent keys when neither --ttl nor --expires-at is given. */
export const DEFAULT_KEY_TTL_MS = 90 * 24 * 60 * 60 * 1000;
const TTL_DEFAULT_KINDS: ReadonlySet<KeyKind> = new Set(["user", "agent"]);

interface CommonOptions {
  db: string;
  json?: boolean;
}

interface CreateOptions extends CommonOptions {
  kind: string;
  name?: string;
  tenant?: string;
  owner?: string;
  scopes?: string;
  expiresAt?: string;
  ttl?: string;
  experiment?: string;
  variation?: string;
  run?: string;
}

/** `keyward keys create|rotate|revoke|get|list` on a local database file. */
export function registerKeyCommands(program: Command, defaultDb: string): void {
  const keys = program.command("keys").description("manage API keys");
  const withCommon = (command: Command): Command =>
    command
      .option("--db <file>", "SQLite key database", process.env.KEYWARD_DATABASE || defaultDb)
      .option("--json", "machine-readable output");

  withCommon(keys.command("create").description("mint a key; its secret is printed once"))
    .requiredOption("--kind <kind>", `one of ${KEY_KINDS.join(", ")}`)
    .option("--name <name>", "a label for people")
    .option("--tenant <tenant>", "tenant the key belongs to")
    .option("--owner <owner>", "subject the key acts as")
    .option("--scopes <list>", "comma-separated scopes, e.g. sources:read,items:write")
    .option("--expires-at <time>", "ISO 8601 expiry time")
    .option("--ttl <duration>", 'lifetime such as 90d or 12h, or "never" (user/agent default: 90d)')
    .option("--experiment <id>", "worker keys: experiment of the run")
    .option("--variation <n>", "worker keys: variation of the run")
    .option("--run <n>", "worker keys: the run")
    .action((options: CreateOptions) => {
      const input = createInput(options);
      withStore(options, (store) => printMinted(options, store.create(input)));
    });

  withCommon(
    keys
      .command("rotate")
      .description("replace a key's secret; the old one stops working")
      .argument("<id>"),
  ).action((id: string, options: CommonOptions) =>
    withStore(options, (store) => printMinted(options, found(id, store.rotate(id)))),
  );

  withCommon(
    keys
      .command("revoke")
      .description("revoke a key; every later request is denied")
      .argument("<id>"),
  ).action((id: string, options: CommonOptions) =>
    withStore(options, (store) => printKey(options, found(id, store.revoke(id)))),
  );

  withCommon(keys.command("get").description("show one key").argument("<id>")).action(
    (id: string, options: CommonOptions) =>
      withStore(options, (store) => printKey(options, found(id, store.get(id)))),
  );

  withCommon(keys.command("list").description("list keys, newest first"))
    .option("--tenant <tenant>")
    .option("--kind <kind>")
    .option("--status <status>", "active, revoked or expired")
    .option("--owner <owner>")
    .option("--run <run>")
    .option("--limit <n>", "at most this many", "100")
    .action((options: CommonOptions & ListKeysFilter & { limit: string }) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1)
        throw new UsageError("--limit: expected a positive whole number");
      if (options.kind && !KEY_KINDS.includes(options.kind))
        throw new UsageError(`--kind: expected one of ${KEY_KINDS.join(", ")}`);
      if (options.status && !["active", "revoked", "expired"].includes(options.status)) {
        throw new UsageError("--status: expected active, revoked or expired");
      }
      withStore(options, (store) => {
        const filter: ListKeysFilter = {
          ...(options.tenant !== undefined && { tenant: options.tenant }),
          ...(options.kind !== undefined && { kind: options.kind }),
          ...(options.status !== undefined && { status: options.status }),
          ...(options.owner !== undefined && { owner: options.owner }),
          ...(options.run !== undefined && { run: options.run }),
        };
        const list = store.list(filter, limit);
        if (options.json) write({ keys: list.map(keyToJson) });
        else if (list.length === 0) write("no keys");
        else for (const key of list) write(describe(key));
      });
    });
}

function createInput(options: CreateOptions) {
  const kind = options.kind as KeyKind;
  if (!KEY_KINDS.includes(kind))
    throw new UsageError(`--kind: expected one of ${KEY_KINDS.join(", ")}`);
  if (options.expiresAt !== undefined && options.ttl !== undefined) {
    throw new UsageError("--expires-at and --ttl: give one, not both");
  }
  let expiresAt: number | undefined;
  if (options.expiresAt !== undefined) {
    expiresAt = Date.parse(options.expiresAt);
    if (!/^\d{4}-\d{2}-\d{2}/.test(options.expiresAt) || Number.isNaN(expiresAt)) {
      throw new UsageError(`--expires-at: "${options.expiresAt}" is not an ISO 8601 time`);
    }
  } else if (options.ttl !== undefined && options.ttl !== "never") {
    const ttl = ms(options.ttl as ms.StringValue) as number | undefined;
    if (typeof ttl !== "number" || !Number.isFinite(ttl) || ttl <= 0) {
      throw new UsageError(`--ttl: "${options.ttl}" is not a duration such as 90d or 12h`);
    }
    expiresAt = Date.now() + ttl;
  } else if (options.ttl === undefined && TTL_DEFAULT_KINDS.has(kind)) {
    expiresAt = Date.now() + DEFAULT_KEY_TTL_MS;
  }
  const bound = [options.experiment, options.variation, options.run];
  if (kind === "worker" && bound.some((part) => !part)) {
    throw new UsageError(
      "--experiment, --variation and --run: all three are required for a worker key",
    );
  }
  if (kind !== "worker" && bound.some((part) => part !== undefined)) {
    throw new UsageError(
      "--experiment, --variation and --run: only worker keys are bound to a run",
    );
  }
  return {
    kind,
    name: options.name,
    tenant: options.tenant,
    owner: options.owner,
    scopes: (options.scopes ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== ""),
    expiresAt,
    binding:
      kind === "worker"
        ? {
            experiment: options.experiment as string,
            variation: options.variation as string,
            run: options.run as string,
          }
        : undefined,
  };
}

function withStore(options: CommonOptions, use: (store: KeyStore) => void): void {
  const db = openDatabase(options.db);
  try {
    use(new KeyStore(db));
  } catch (error) {
    if (error instanceof KeyInputError) throw new UsageError(error.message);
    throw error;
  } finally {
    db.close();
  }
}

function found<T>(id: string, value: T | undefined): T {
  if (value === undefined) throw new Error(`key ${id} not found`);
  return value;
}

function printMinted(options: CommonOptions, minted: MintedKey): void {
  if (options.json) {
    write(mintedToJson(minted));
    return;
  }
  write(describe(minted.key));
  write("secret (shown once; store it in your secret manager now):");
  write(minted.secret);
}

function printKey(options: CommonOptions, key: KeyRecord): void {
  write(options.json ? { key: keyToJson(key) } : describe(key));
}

function describe(key: KeyRecord): string {
  const json = keyToJson(key);
  const parts = [
    `${json.id}  ${json.keyLookup}  ${json.kind}  ${json.status}`,
    json.name && `name=${JSON.stringify(json.name)}`,
    json.tenant && `tenant=${json.tenant}`,
    json.owner && `owner=${json.owner}`,
    `scopes=${json.scopes.join(",") || "-"}`,
    json.binding && `run=${json.binding.experiment}/${json.binding.variation}/${json.binding.run}`,
    `expires=${json.expiresAt ?? "never"}`,
  ];
  return parts.filter(Boolean).join("  ");
}

function write(value: unknown): void {
  process.stdout.write(typeof value === "string" ? `${value}\n` : `${JSON.stringify(value)}\n`);
}
