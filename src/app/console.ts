import { CONSOLE_DIST, type ConsoleHandler, createConsoleHandler } from "../admin/console.js";
import { type Config, consoleEnabled } from "../config/schema.js";
import type { Logger } from "../lib/log.js";

/**
 * The key console's files when it is on (any role); issuers are read per
 * request, so reloads show. Cheap to import: admin/console.ts uses node's
 * own modules only, so a replica with the console off loads nothing more.
 */
export function adminConsole(
  config: Config,
  issuers: () => Config["issuers"],
  logger: Logger,
): ConsoleHandler | undefined {
  if (!consoleEnabled(config)) return undefined;
  const handler = createConsoleHandler({ issuers });
  if (!handler.built) {
    logger.warn(
      { folder: CONSOLE_DIST },
      "console.enabled but the console was not built (npm run build); /console/ answers 503",
    );
  }
  return handler;
}
