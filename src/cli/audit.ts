import { existsSync } from "node:fs";
import type { Command } from "commander";
import { AuditLog } from "../keys/audit.js";
import { openDatabase } from "../keys/db.js";
import { resolveDatabase } from "./database.js";
import { UsageError } from "./errors.js";
import { positive, withDatabase } from "./flags.js";
import { write } from "./output.js";

/** `keyward audit list`: the admin audit trail, read from the database file. */
export function registerAuditCommand(program: Command): void {
  withDatabase(program.command("audit").description("the admin audit trail").command("list"))
    .description("list audit entries, newest first")
    .option("--key <id>", "only entries about this key")
    .option("--tenant <tenant>", "only entries about this tenant")
    .option("--limit <n>", "at most this many", "100")
    .option("--json", "machine-readable output")
    .action(
      (options: {
        db?: string;
        config?: string;
        key?: string;
        tenant?: string;
        limit: string;
        json?: boolean;
      }) => {
        const limit = positive(options.limit);
        const file = resolveDatabase(options);
        if (!existsSync(file)) throw new UsageError(`--db: no key database at ${file}`);
        const db = openDatabase(file);
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
