import type { Command } from "commander";
import { KEY_KINDS, type RunBinding } from "../auth/identity.js";
import { DEFAULTS } from "../config/schema.js";
import { KeyInputError } from "../keys/input.js";
import type { ListKeysFilter } from "../keys/repository.js";
import { KEY_STATUSES } from "../keys/rows.js";
import { durationMs } from "../lib/duration.js";
import { type KeyBackend, openBackend } from "./backend.js";
import { UsageError } from "./errors.js";
import { positive, withDatabase } from "./flags.js";
import {
  type CreateFlags,
  createInput,
  DEFAULT_KEY_TTL,
  type UpdateFlags,
  updateInput,
} from "./key-input.js";
import { describe, describeUsage, printKey, printMinted, write } from "./output.js";

/** The flags every `keys` command takes. */
interface CommonFlags {
  db?: string;
  config?: string;
  server?: string;
  token?: string;
  json?: boolean;
}

/** `keyward keys …`. *
 * Long because it declares the whole `keys` command tree; each action is a
 * few lines over `run` and the backend.
 */
export function registerKeyCommands(program: Command): void {
  const keys = program
    .command("keys")
    .description("manage API keys (on a database file, or through the admin API)");
  const withCommon = (command: Command): Command =>
    withDatabase(command)
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
    .option("--meta <json>", 'metadata, a JSON object of at most 4 KiB, e.g. \'{"plan":"pro"}\'')
    .option("--cidrs <list>", "comma-separated networks the key may be used from, e.g. 10.0.0.0/8")
    .option("--rate-limit <limit>", "REQUESTS/WINDOW[:BURST] per keyward process, e.g. 100/1s")
    .option(
      "--idempotency-key <key>",
      "with --server: a retry with the same key returns the first result",
    )
    .action((options: CommonFlags & CreateFlags) =>
      // The bootstrap: the first key is minted before the server ever ran.
      run(options, { mayCreateDatabase: true }, async (backend) => {
        const minted = await backend.create(createInput(options), options.idempotencyKey);
        printMinted(options.json, minted);
      }),
    );

  withCommon(
    keys
      .command("rotate")
      .description("replace a key's secret; the old one stops working (after --grace)")
      .argument("<id>"),
  )
    .option(
      "--grace <duration>",
      `how long the old secret keeps working, e.g. 1h (default 0; at most ${DEFAULTS.maxRotationGrace} on a file, keys.max_rotation_grace on a server)`,
    )
    .action((id: string, options: CommonFlags & { grace?: string }) => {
      const graceMs = graceFlag(options.grace);
      return run(options, {}, async (backend) =>
        printMinted(options.json, await backend.rotate(id, graceMs)),
      );
    });

  withCommon(
    keys
      .command("revoke")
      .description("revoke a key; every later request is denied")
      .argument("<id>"),
  ).action((id: string, options: CommonFlags) =>
    run(options, {}, async (backend) => printKey(options.json, await backend.revoke(id))),
  );

  withCommon(
    keys
      .command("update")
      .description("change a key's name, scopes, expiry or metadata; its secret stays")
      .argument("<id>"),
  )
    .option("--name <name>", "a label for people")
    .option("--scopes <list>", "comma-separated scopes: replaces the key's scopes")
    .option("--expires-at <time>", "ISO 8601 expiry time")
    .option("--meta <json>", "metadata: replaces it; '{}' removes it")
    .option("--cidrs <list>", "allowed networks: replaces them; '' allows anywhere")
    .option("--rate-limit <limit>", "REQUESTS/WINDOW[:BURST], or none to remove it")
    .action((id: string, options: CommonFlags & UpdateFlags) => {
      const changes = updateInput(options);
      return run(options, {}, async (backend) =>
        printKey(options.json, await backend.update(id, changes)),
      );
    });

  withCommon(
    keys
      .command("suspend")
      .description("suspend a key: later requests are denied (key_disabled) until it is resumed")
      .argument("<id>"),
  ).action((id: string, options: CommonFlags) =>
    run(options, {}, async (backend) => printKey(options.json, await backend.suspend(id))),
  );

  withCommon(keys.command("resume").description("lift a key's suspension").argument("<id>")).action(
    (id: string, options: CommonFlags) =>
      run(options, {}, async (backend) => printKey(options.json, await backend.resume(id))),
  );

  withCommon(keys.command("get").description("show one key").argument("<id>")).action(
    (id: string, options: CommonFlags) =>
      run(options, {}, async (backend) => printKey(options.json, await backend.get(id))),
  );

  withCommon(
    keys
      .command("usage")
      .description("show a key's hourly use across the fleet (allowed, denied by code)")
      .argument("<id>"),
  )
    .option("--hours <n>", "how many hours back", "24")
    .action((id: string, options: CommonFlags & { hours: string }) => {
      const hours = positive(options.hours);
      return run(options, {}, async (backend) => {
        const usage = await backend.usage(id, hours);
        if (options.json) write({ usage });
        else if (usage.length === 0) write(`no use of ${id} in the last ${hours} hours`);
        else for (const hour of usage) write(describeUsage(hour));
      });
    });

  withCommon(keys.command("list").description("list keys, newest first"))
    .option("--tenant <tenant>")
    .option("--kind <kind>")
    .option("--status <status>", KEY_STATUSES.join(", "))
    .option("--owner <owner>")
    .option("--run <run>")
    .option("--limit <n>", "at most this many", "100")
    .action((options: CommonFlags & ListKeysFilter & { limit: string }) => {
      const limit = positive(options.limit);
      if (options.kind && !KEY_KINDS.includes(options.kind)) {
        throw new UsageError(`--kind: expected one of ${KEY_KINDS.join(", ")}`);
      }
      if (options.status && !KEY_STATUSES.includes(options.status)) {
        throw new UsageError(`--status: expected one of ${KEY_STATUSES.join(", ")}`);
      }
      const filter: ListKeysFilter = {
        ...(options.tenant !== undefined && { tenant: options.tenant }),
        ...(options.kind !== undefined && { kind: options.kind }),
        ...(options.status !== undefined && { status: options.status }),
        ...(options.owner !== undefined && { owner: options.owner }),
        ...(options.run !== undefined && { run: options.run }),
      };
      return run(options, {}, async (backend) => {
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
    .action((options: CommonFlags & RunBinding) =>
      run(options, {}, async (backend) => {
        const revoked = await backend.revokeRun({
          experiment: options.experiment,
          variation: options.variation,
          run: options.run,
        });
        if (options.json) write({ keys: revoked });
        else write(`revoked ${revoked.length} worker key(s)`);
      }),
    );
}

/** The --grace value in ms: 0 or a duration (the backend bounds it). */
function graceFlag(value: string | undefined): number {
  if (value === undefined || value === "0") return 0;
  const graceMs = durationMs(value);
  if (graceMs === undefined) throw new UsageError("--grace: expected a duration such as 1h or 7d");
  return graceMs;
}

async function run(
  options: CommonFlags,
  how: { mayCreateDatabase?: boolean },
  use: (backend: KeyBackend) => Promise<void>,
): Promise<void> {
  const backend = await openBackend(options, how.mayCreateDatabase ?? false);
  try {
    await use(backend);
  } catch (error) {
    if (error instanceof KeyInputError) throw new UsageError(error.message);
    throw error;
  } finally {
    backend.close();
  }
}
