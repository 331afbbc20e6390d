import { execFileSync } from "node:child_process";

/**
 * The CLI tests run `bin/keyward.js`, which loads the compiled dist/. Build it
 * once before any test so they never run against stale output.
 */
export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], {
    stdio: "inherit",
  });
}
