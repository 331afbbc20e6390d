import { type Command, Option } from "commander";
import { UsageError } from "./errors.js";

/** `--db` and `--config`: the database, found as `keyward serve` finds it (database.ts). */
export function withDatabase(command: Command): Command {
  return command
    .option("--db <file>", "SQLite key database (default: the server's, from --config or ./data)")
    .addOption(
      new Option("--config <file>", "the server's YAML configuration, to find its database").env(
        "KEYWARD_CONFIG",
      ),
    );
}

/** `--limit`: a positive whole number, or a usage error. */
export function positive(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError("--limit: expected a positive whole number");
  return limit;
}
