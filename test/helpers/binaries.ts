import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/**
 * A program the end-to-end tests drive (nginx, caddy): `$ENV`, else its
 * Debian path, else the first on PATH. Failing (not skipping) on purpose:
 * CI installs it (.ci/run), so a missing binary is a broken environment,
 * not an optional test.
 */
export function findBinary(name: string, envVariable: string, debianPath: string): string {
  const candidates = [
    process.env[envVariable],
    debianPath,
    ...(process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, name)),
  ];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  throw new Error(
    `${name} not found (looked at $${envVariable}, ${debianPath} and PATH): ` +
      `install it (Debian: apt-get install ${name}) to run the ${name} tests`,
  );
}
