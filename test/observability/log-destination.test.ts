import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";

/**
 * Runs `script` in a fresh node process with dist/lib/log.js's createLogger
 * in scope as `createLogger`, and resolves with its standard error split
 * into JSON records once it has exited. (dist/ is built by the global setup.)
 */
function run(script: string): Promise<{ records: Record<string, unknown>[]; code: number | null }> {
  const program = `import { createLogger } from "./dist/lib/log.js";\n${script}`;
  const child = spawn(process.execPath, ["--input-type=module", "-e", program], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve) => {
    child.on("close", (code) => {
      const records = stderr
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      resolve({ records, code });
    });
  });
}

describe("the standard-error log destination", () => {
  it("writes every line logged in one turn, whole and in order, when the process exits in that turn", async () => {
    // process.exit in the same turn: the lines are still pending and must be
    // written by the exit hook, none lost and none cut.
    const { records, code } = await run(
      `const log = createLogger();
       for (let i = 0; i < 5000; i++) log.info({ i, path: "/a".repeat(i % 7) }, "check denied");
       process.exit(3);`,
    );
    expect(code).toBe(3);
    expect(records.map((r) => r.i)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it("does not hold a line past the turn it was logged in", async () => {
    // The child logs one line and then waits for a word on its standard
    // input, which the test sends only once that line has reached it: a line
    // held back until more lines came, or until exit, would hang here.
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { createLogger } from "./dist/lib/log.js";
         createLogger().info({ n: 1 }, "ready");
         process.stdin.once("data", () => process.exit(0));`,
      ],
      { stdio: ["pipe", "ignore", "pipe"] },
    );
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('"msg":"ready"')) child.stdin.write("go\n");
    });
    const code = await new Promise((resolve) => child.on("close", resolve));
    expect(code).toBe(0);
    expect(JSON.parse(stderr.trim())).toMatchObject({ n: 1, msg: "ready", level: 30 });
  });
});
