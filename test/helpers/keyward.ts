import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parse, stringify } from "yaml";
import { createKeyward, type Keyward, type KeywardPorts } from "../../src/app/keyward.js";
import { loadConfig } from "../../src/config/load.js";
import { openDatabase } from "../../src/keys/db.js";
import { KeyRepository } from "../../src/keys/repository.js";
import { createLogger } from "../../src/lib/log.js";

/** The shipped policy, deploy/policy.yaml. Pass it as `policy` to test what it admits. */
export const SHIPPED_POLICY = "deploy/policy.yaml";

let scopeTablePolicy: string | undefined;
/**
 * The shipped policy's routes and scopes with every rule's `kinds:` and
 * `jwt:` taken out, so that any credential kind holding the scopes passes.
 * Tests about keys, rotation, admin calls, replication... use it by default
 * with whatever kind of credential they mint; what the shipped policy admits
 * per kind is test/deploy/route-families.test.ts's subject.
 */
export function scopeTablePolicyFile(): string {
  if (scopeTablePolicy === undefined) {
    const doc = parse(readFileSync(SHIPPED_POLICY, "utf8")) as { rules: Record<string, unknown>[] };
    for (const rule of doc.rules) {
      delete rule.kinds;
      delete rule.jwt;
    }
    const file = join(mkdtempSync(join(tmpdir(), "keyward-policy-")), "scope-table.yaml");
    writeFileSync(file, stringify(doc));
    scopeTablePolicy = file;
  }
  return scopeTablePolicy;
}

/** Captures every log line a server writes, for assertions about logging. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    this.lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    done();
  }
  get records(): Record<string, unknown>[] {
    return this.lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  }
  get text(): string {
    return this.lines.join("\n");
  }
}

export interface TestKeyward {
  readonly keyward: Keyward;
  readonly ports: KeywardPorts;
  /** A second connection to the same database file, as an operator's CLI would have. */
  readonly store: KeyRepository;
  readonly dir: string;
  readonly database: string;
  readonly logs: LogCapture;
  close(): Promise<void>;
}

/**
 * Starts a real keyward on ephemeral loopback ports with its own temporary
 * SQLite file. `overrides` are config fields (as in the YAML file).
 */
export async function startTestKeyward(
  overrides: Record<string, unknown> = {},
): Promise<TestKeyward> {
  const dir = mkdtempSync(join(tmpdir(), "keyward-test-"));
  const database = join(dir, "keys.db");
  const config = loadConfig({
    env: {},
    overrides: {
      database,
      listen: { host: "127.0.0.1", check: 0, admin: 0, http: 0 },
      policy: scopeTablePolicyFile(),
      ...overrides,
    },
  });
  const logs = new LogCapture();
  const keyward = await createKeyward(config, {
    logger: createLogger({ level: "debug", destination: logs }),
  });
  const ports = await keyward.start();
  const db = openDatabase(database);
  return {
    keyward,
    ports,
    store: new KeyRepository(db),
    dir,
    database,
    logs,
    async close() {
      await keyward.close();
      db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
