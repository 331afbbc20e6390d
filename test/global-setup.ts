import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/**
 * The CLI tests run `bin/keyward.js`, which loads the compiled dist/. Build it
 * once before any test so they never run against stale output. The key
 * console (dist/console/, built by vite) is rebuilt only when its sources or
 * the generated admin API it calls are newer than the last build.
 */
export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  });
  const built = mtime("dist/console/index.html");
  const sources = Math.max(newest("src/console"), newest("src/gen/keyward/admin"));
  if (built === undefined || sources > built) {
    execFileSync(
      process.execPath,
      ["node_modules/vite/bin/vite.js", "build", "--config", "src/console/vite.config.ts"],
      { stdio: "inherit" },
    );
  }
}

function mtime(file: string): number | undefined {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

function newest(folder: string): number {
  return Math.max(
    0,
    ...readdirSync(folder, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => mtime(join(entry.parentPath, entry.name)) ?? 0),
  );
}
