import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { ConfigError, formatZodError } from "./errors.js";
import { type Config, configSchema } from "./schema.js";

/** Environment variables that override a config field (DESIGN "Configuration"). */
export const ENV_OVERRIDES: Readonly<Record<string, readonly string[]>> = {
  KEYWARD_ROLE: ["role"],
  KEYWARD_DATABASE: ["database"],
  KEYWARD_LISTEN_HOST: ["listen", "host"],
  KEYWARD_CHECK_PORT: ["listen", "check"],
  KEYWARD_ADMIN_PORT: ["listen", "admin"],
  KEYWARD_HTTP_PORT: ["listen", "http"],
  KEYWARD_POLICY: ["policy"],
  KEYWARD_LOG_LEVEL: ["log_level"],
  KEYWARD_WORKERS: ["workers"],
  KEYWARD_REPLICATION_PRIMARY: ["replication", "primary"],
  KEYWARD_REPLICATION_TOKEN: ["replication", "token"],
};

/** Where the configuration comes from. */
export interface ConfigSource {
  /** YAML file; when absent, defaults plus environment only. */
  readonly file?: string | undefined;
  /** Default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Applied last, for tests and the composition root. */
  readonly overrides?: Record<string, unknown>;
}

/**
 * Reads file → applies environment → validates. Any problem throws a
 * ConfigError whose message is one line naming the field (and the variable,
 * when the value came from the environment).
 */
export function loadConfig(source: ConfigSource = {}): Config {
  const env = source.env ?? process.env;
  let raw: Record<string, unknown> = {};
  if (source.file) {
    let text: string;
    try {
      text = readFileSync(source.file, "utf8");
    } catch (error) {
      throw new ConfigError(
        `config ${source.file}: cannot read (${(error as NodeJS.ErrnoException).code})`,
      );
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (error) {
      throw new ConfigError(`config ${source.file}: ${(error as Error).message.split("\n")[0]}`);
    }
    if (
      parsed !== null &&
      parsed !== undefined &&
      (typeof parsed !== "object" || Array.isArray(parsed))
    ) {
      throw new ConfigError(`config ${source.file}: the top level must be a mapping`);
    }
    raw = (parsed as Record<string, unknown> | null) ?? {};
  }

  const fromEnv = new Map<string, string>();
  for (const [variable, path] of Object.entries(ENV_OVERRIDES)) {
    const value = env[variable];
    if (value === undefined || value === "") continue;
    setPath(raw, path, value);
    fromEnv.set(path.join("."), variable);
  }
  for (const [key, value] of Object.entries(source.overrides ?? {})) raw[key] = value;

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    const message = formatZodError(result.error);
    const field = message.slice(0, message.indexOf(":"));
    const variable = fromEnv.get(field);
    const where = source.file ? `config ${source.file}` : "config";
    throw new ConfigError(`${where}: ${variable ? `${variable} → ` : ""}${message}`);
  }
  return checkContradictions(result.data);
}

function checkContradictions(config: Config): Config {
  if (config.role === "replica" && !config.replication.primary) {
    throw new ConfigError("config: replication.primary: required when role is replica");
  }
  if (config.role !== "single" && !config.replication.token && !config.replication.token_file) {
    throw new ConfigError(
      `config: replication.token_file: a ${config.role} needs the replication token (token_file or KEYWARD_REPLICATION_TOKEN)`,
    );
  }
  if (config.role === "replica" && config.workers > 1) {
    // A replica's Check reads its sync state (snapshot, staleness) in the
    // process that streams from the primary.
    throw new ConfigError("config: workers: a replica serves Check in one process (workers: 1)");
  }
  return config;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}
