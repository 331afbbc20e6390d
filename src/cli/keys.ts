import { userInfo } from "node:os";
import type { Command } from "commander";
import type { KeyKind, RunBinding } from "../auth/identity.js";
import { KEY_KINDS } from "../auth/identity.js";
import { AuditLog } from "../keys/audit.js";
import { type Db, openDatabase } from "../keys/db.js";
import {
  type CreateKeyInput,
  KeyInputError,
  type KeyInputField,
  validateKeyInput,
} from "../keys/input.js";
import { type KeyJson, keyToJson } from "../keys/json.js";
import { KeyRepository, type ListKeysFilter } from "../keys/repository.js";
import { durationMs } from "../lib/duration.js";
import { UsageError } from "./errors.js";

/** Lifetime of user and agent keys created locally without --ttl or --expires-at. */
export const DEFAULT_KEY_TTL = "90d";
const TTL_DEFAULT_KINDS: ReadonlySet<KeyKind> = new Set(["user", "agent"]);

interface CommonOptions {
  db: string;
  server?: string;
  token?: string;
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
  idempotencyKey?: string;
}

export interface Minted {
  key: KeyJson;
  secret: string;
}

/**
 * Where `keys` commands act: directly on a database file (bootstrap, and
 * operators on the box) or through a running admin API. Both print the
 * same JSON.
 */
export interface KeyBackend {
  create(input: CreateKeyInput, idempotencyKey: string | undefined): Promise<Minted>;
  rotate(id: string): Promise<Minted>;
  revoke(id: string): Promise<KeyJson>;
  get(id: string): Promise<KeyJson>;
  list(filter: ListKeysFilter, limit: number): Promise<KeyJson[]>;
  revokeRun(binding: RunBinding): Promise<KeyJson[]>;
  close(): void;
}

/** `keyward keys …` and `keyward audit list`. */
export function registerKeyCommands(program: Command, defaultDb: string): void {
  const keys = program
    .command("keys")
    .description("manage API keys (on a database file, or through the admin API)");
  const withCommon = (command: Command): Command =>
    command
      .option("--db <file>", "SQLite key database", process.env.KEYWARD_DATABASE || defaultDb)
      .option("--server <url>", "admin API base URL, e.g. http://127.0.0.1:9192 (instead of --db)")
      .option(
        "--token <token>",
        "bearer token for --server (or KEYWARD_TOKEN)",
        process.env.KEYWARD_TOKEN,
      )
      .option("--json", "machine-readable output");

  withCommon(keys.command("create").description("mint a key; its secret is printed once"))
    .requiredOption("--kind <kind>", `one of ${KEY_KINDS.join(", ")}`)
    .option("--name <name>", "a label for people")
    .option("--tenant <tenant>", "tenant the key belongs to")
    .option("--owner <owner>", "subject the key acts as")
    .option("--scopes <list>", "comma-separated scopes, e.g. sources:read,items:write")
    .option("--expires-at <time>", "ISO 8601 expiry time")
    .option(
      "--ttl <duration>",
      `lifetime such as 90d or 12h, or "never" (user/agent default: ${DEFAULT_KEY_TTL})`,
    )
    .option("--experiment <id>", "worker keys: experiment of the run")
    .option("--variation <n>", "worker keys: variation of the run")
    .option("--run <n>", "worker keys: the run")
    .option(
      "--idempotency-key <key>",
      "with --server: a retry with the same key returns the first result",
    )
    .action((options: CreateOptions) =>
      run(options, async (backend) => {
        const minted = await backend.create(createInput(options), options.idempotencyKey);
        printMinted(options, minted);
      }),
    );

  withCommon(
    keys
      .command("rotate")
      .description("replace a key's secret; the old one stops working")
      .argument("<id>"),
  ).action((id: string, options: CommonOptions) =>
    run(options, async (backend) => printMinted(options, await backend.rotate(id))),
  );

  withCommon(
    keys
      .command("revoke")
      .description("revoke a key; every later request is denied")
      .argument("<id>"),
  ).action((id: string, options: CommonOptions) =>
    run(options, async (backend) => printKey(options, await backend.revoke(id))),
  );

  withCommon(keys.command("get").description("show one key").argument("<id>")).action(
    (id: string, options: CommonOptions) =>
      run(options, async (backend) => printKey(options, await backend.get(id))),
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
      if (options.kind && !KEY_KINDS.includes(options.kind)) {
        throw new UsageError(`--kind: expected one of ${KEY_KINDS.join(", ")}`);
      }
      if (options.status && !["active", "revoked", "expired"].includes(options.status)) {
        throw new UsageError("--status: expected active, revoked or expired");
      }
      const filter: ListKeysFilter = {
        ...(options.tenant !== undefined && { tenant: options.tenant }),
        ...(options.kind !== undefined && { kind: options.kind }),
        ...(options.status !== undefined && { status: options.status }),
        ...(options.owner !== undefined && { owner: options.owner }),
        ...(options.run !== undefined && { run: options.run }),
      };
      return run(options, async (backend) => {
        const list = await backend.list(filter, limit);
        if (options.json) write({ keys: list });
        else if (list.length === 0) write("no keys");
        else for (const key of list) write(describe(key));
      });
    });

  withCommon(
    keys.command("revoke-run").description("end a run: revoke every worker key bound to it"),
  )
    .requiredOption("--experiment <id>")
    .requiredOption("--variation <n>")
    .requiredOption("--run <n>")
    .action((options: CommonOptions & RunBinding) =>
      run(options, async (backend) => {
        const revoked = await backend.revokeRun({
          experiment: options.experiment,
          variation: options.variation,
          run: options.run,
        });
        if (options.json) write({ keys: revoked });
        else write(`revoked ${revoked.length} worker key(s)`);
      }),
    );

  program
    .command("audit")
    .description("the admin audit trail")
    .command("list")
    .description("list audit entries, newest first")
    .option("--db <file>", "SQLite key database", process.env.KEYWARD_DATABASE || defaultDb)
    .option("--key <id>", "only entries about this key")
    .option("--tenant <tenant>", "only entries about this tenant")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "machine-readable output")
    .action(
      (options: { db: string; key?: string; tenant?: string; limit: string; json?: boolean }) => {
        const limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1)
          throw new UsageError("--limit: expected a positive whole number");
        const db = openDatabase(options.db);
        try {
          const entries = new AuditLog(db).list(
            {
              ...(options.key && { keyId: options.key }),
              ...(options.tenant && { tenant: options.tenant }),
            },
            limit,
          );
          if (options.json)
            write({ entries: entries.map((e) => ({ ...e, at: new Date(e.at).toISOString() })) });
          else if (entries.length === 0) write("no audit entries");
          else {
            for (const e of entries) {
              write(
                `${new Date(e.at).toISOString()}  ${e.actor}  ${e.action}  ${e.keyId ?? "-"}  ${e.tenant ?? "-"}  ${e.outcome}${e.detail ? `  ${e.detail}` : ""}`,
              );
            }
          }
        } finally {
          db.close();
        }
      },
    );
}

async function run(
  options: CommonOptions,
  use: (backend: KeyBackend) => Promise<void>,
): Promise<void> {
  // The admin API client loads only when it is used: `keys` on a local file
  // should start as fast as possible.
  const backend = options.server
    ? (await import("./remote-keys.js")).remoteBackend(options.server, options.token)
    : localBackend(options.db);
  try {
    await use(backend);
  } catch (error) {
    if (error instanceof KeyInputError) throw new UsageError(error.message);
    throw error;
  } finally {
    backend.close();
  }
}

function createInput(options: CreateOptions): CreateKeyInput {
  const kind = options.kind as KeyKind;
  if (!KEY_KINDS.includes(kind))
    throw new UsageError(`--kind: expected one of ${KEY_KINDS.join(", ")}`);
  if (options.expiresAt !== undefined && options.ttl !== undefined) {
    throw new UsageError("--expires-at and --ttl: give one, not both");
  }
  if (options.idempotencyKey !== undefined && !options.server) {
    throw new UsageError("--idempotency-key: only with --server");
  }
  let expiresAt: number | undefined;
  if (options.expiresAt !== undefined) {
    expiresAt = Date.parse(options.expiresAt);
    if (!/^\d{4}-\d{2}-\d{2}/.test(options.expiresAt) || Number.isNaN(expiresAt)) {
      throw new UsageError(`--expires-at: "${options.expiresAt}" is not an ISO 8601 time`);
    }
  } else if (options.ttl === "never") {
    if (options.server && TTL_DEFAULT_KINDS.has(kind)) {
      throw new UsageError(
        "--ttl never: the admin API gives user and agent keys its default lifetime",
      );
    }
  } else if (options.ttl !== undefined) {
    const ttl = durationMs(options.ttl);
    if (ttl === undefined)
      throw new UsageError(`--ttl: "${options.ttl}" is not a duration such as 90d or 12h`);
    expiresAt = Date.now() + ttl;
  } else if (!options.server && TTL_DEFAULT_KINDS.has(kind)) {
    expiresAt = Date.now() + (durationMs(DEFAULT_KEY_TTL) as number);
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
  const input: CreateKeyInput = {
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
  // The rule the store and the admin API apply, checked here in both modes
  // so that the message names the flag.
  try {
    validateKeyInput(input, Date.now());
  } catch (error) {
    if (!(error instanceof KeyInputError) || !error.field) throw error;
    const flag = error.field === "expiresAt" && options.ttl ? "--ttl" : FLAGS[error.field];
    throw new UsageError(`${flag}: ${error.problem}`);
  }
  return input;
}

/** The `keys create` flag behind each field of a key's input. */
const FLAGS: Record<KeyInputField, string> = {
  kind: "--kind",
  name: "--name",
  tenant: "--tenant",
  owner: "--owner",
  scopes: "--scopes",
  expiresAt: "--expires-at",
  binding: "--experiment, --variation and --run",
};

/** Works on the file directly; every change is audited in its own transaction, as the admin API does. */
function localBackend(file: string): KeyBackend {
  const db: Db = openDatabase(file);
  const store = new KeyRepository(db);
  const audit = new AuditLog(db);
  const actor = `cli:${safeUser()}`;
  const audited = <T>(
    action: string,
    change: () => T,
    keysOf: (value: T) => { id: string; tenant: string }[],
  ): T =>
    db.transaction(() => {
      const value = change();
      for (const key of keysOf(value)) {
        audit.record({
          actor,
          action,
          keyId: key.id,
          tenant: key.tenant,
          outcome: "ok",
          detail: "",
        });
      }
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
    async rotate(id) {
      const minted = audited(
        "RotateKey",
        () => found(id, store.rotate(id)),
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
    async get(id) {
      return keyToJson(found(id, store.get(id)));
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

function printMinted(options: CommonOptions, minted: Minted): void {
  if (options.json) {
    write(minted);
    return;
  }
  write(describe(minted.key));
  write("secret (shown once; store it in your secret manager now):");
  write(minted.secret);
}

function printKey(options: CommonOptions, key: KeyJson): void {
  write(options.json ? { key } : describe(key));
}

function describe(json: KeyJson): string {
  const parts = [
    `${json.id}  ${json.keyLookup}  ${json.kind}  ${json.status}`,
    json.name && `name=${JSON.stringify(json.name)}`,
    json.tenant && `tenant=${json.tenant}`,
    json.owner && `owner=${json.owner}`,
    `scopes=${json.scopes.join(",") || "-"}`,
    json.binding && `run=${json.binding.experiment}/${json.binding.variation}/${json.binding.run}`,
    `expires=${json.expiresAt ?? "never"}`,
    json.lastUsedAt && `last-used=${json.lastUsedAt}`,
  ];
  return parts.filter(Boolean).join("  ");
}

function write(value: unknown): void {
  process.stdout.write(typeof value === "string" ? `${value}\n` : `${JSON.stringify(value)}\n`);
}
