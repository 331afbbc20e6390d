import { Command, CommanderError, Option } from "commander";
import { ConfigError } from "../config/errors.js";
import { registerAuditCommand } from "./audit.js";
import { registerCheckCommand } from "./check.js";
import { EXIT_FAILED, EXIT_USAGE, ExitStatus, UsageError } from "./errors.js";
import { registerKeyCommands } from "./keys.js";

/** Builds the `keyward` command tree. Exported for tests. */
export function buildProgram(): Command {
  const program = new Command("keyward")
    .description("Authorization sidecar for service meshes (Envoy ext_authz)")
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`${text.trim().split("\n")[0]}\n`) });

  program
    .command("serve")
    .description("start keyward in the role its configuration names")
    .addOption(new Option("--config <file>", "YAML configuration file").env("KEYWARD_CONFIG"))
    .action(async (options: { config?: string }) => {
      // Loaded here, not at the top: `keys` and `check` start faster without the servers.
      const { loadConfig } = await import("../config/load.js");
      const { createKeyward } = await import("../app/keyward.js");
      const config = loadConfig({ file: options.config });
      const keyward = await createKeyward(config, {
        reloadConfig: () => loadConfig({ file: options.config }),
        ...(options.config && { watchFiles: [options.config] }),
      });
      // Signals are handled from before the first port opens: a SIGTERM that
      // arrives during start-up still drains and exits cleanly.
      const starting = keyward.start();
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        keyward.logger.info({ signal }, "draining");
        starting
          .catch(() => undefined)
          .then(() => keyward.close())
          .then(
            () => process.exit(0),
            () => process.exit(1),
          );
      };
      process.on("SIGTERM", () => stop("SIGTERM"));
      process.on("SIGINT", () => stop("SIGINT"));
      // SIGHUP reloads the policy file and the JWT issuers without a restart.
      process.on("SIGHUP", () => void keyward.reload());
      await starting;
    });

  program
    .command("promote")
    .description(
      "turn a stopped replica's database into a primary's, continuing the sequence; then start it with role: primary",
    )
    .addOption(new Option("--config <file>", "YAML configuration file").env("KEYWARD_CONFIG"))
    .option("--db <file>", "the replica's database file (default: the configuration's)")
    .action(async (options: { config?: string; db?: string }) => {
      const { resolveDatabase } = await import("./database.js");
      const { openDatabase } = await import("../keys/db.js");
      const { promoteReplica } = await import("../keys/promote.js");
      const file = resolveDatabase(options);
      const { existsSync } = await import("node:fs");
      if (!existsSync(file)) throw new UsageError(`no database at ${file}`);
      const db = openDatabase(file);
      try {
        const sequence = promoteReplica(db);
        process.stdout.write(
          `promoted ${file}: changes continue after sequence ${sequence}; start it with role: primary (KEYWARD_ROLE=primary)\n`,
        );
      } finally {
        db.close();
      }
    });

  registerKeyCommands(program);
  registerAuditCommand(program);
  registerCheckCommand(program);
  return program;
}

/** Runs the CLI and returns the exit code (it never calls process.exit itself on success). */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[], { from: "node" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return 0;
      if (error.code === "commander.help") return 0;
      return EXIT_USAGE;
    }
    if (error instanceof ExitStatus) return error.code;
    if (error instanceof ConfigError || error instanceof UsageError) {
      process.stderr.write(`keyward: ${error.message}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`keyward: ${error instanceof Error ? error.message : String(error)}\n`);
    return EXIT_FAILED;
  }
}
