import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";

/** Debian's Chromium; .ci/run installs the `chromium` package. */
export const CHROMIUM = process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium";

/** Where the console tests leave a screenshot of every screen (git-ignored). */
export const SCREENSHOTS = "test/console/screenshots";

/**
 * Flags for a closed network: nothing of Chromium's own (updates, sync,
 * QUIC probes, first-run pages) reaches out, so the only requests are the
 * page's own.
 */
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A real headless Chromium with a fresh profile; `close()` removes the profile. */
export interface Browser {
  readonly context: BrowserContext;
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/** Launches Chromium through playwright-core with a fresh --user-data-dir. */
export async function launchBrowser(
  options: { viewport?: { width: number; height: number }; deviceScaleFactor?: number } = {},
): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "keyward-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: options.viewport ?? { width: 1280, height: 800 },
    deviceScaleFactor: options.deviceScaleFactor ?? 1,
    locale: "en-GB",
    timezoneId: "UTC",
  });
  return {
    context,
    newPage: () => context.newPage(),
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** One axe-core finding, as the tests report it. */
export interface AxeViolation {
  readonly id: string;
  readonly impact: string | null;
  readonly help: string;
  readonly targets: string[];
}

/**
 * Runs axe-core in the page (WCAG 2.0/2.1/2.2 A and AA rules) and returns the
 * serious and critical violations. The script is evaluated through the
 * DevTools protocol, not added as a <script>: the console's CSP would (and
 * should) refuse an inline one.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(AXE_SOURCE);
  // Evaluated in the page (a string: this file is type-checked without the DOM library).
  const violations = (await page.evaluate(`axe
    .run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"] },
    })
    .then((result) =>
      result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        targets: v.nodes.map((n) => n.target.join(" ")),
      })),
    )`)) as AxeViolation[];
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Saves a full-page screenshot of the screen under {@link SCREENSHOTS}. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** What a page did that the console must never do: CSP violations, third-party requests, errors. */
export interface PageWatch {
  readonly cspViolations: string[];
  readonly foreignRequests: string[];
  readonly pageErrors: string[];
}

/** Records CSP violations, requests to origins other than `allowed`, and uncaught errors. */
export function watchPage(page: Page, allowed: readonly string[]): PageWatch {
  const watch: PageWatch = { cspViolations: [], foreignRequests: [], pageErrors: [] };
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) watch.cspViolations.push(message.text());
  });
  page.on("pageerror", (error) => watch.pageErrors.push(error.message));
  page.on("request", (request) => {
    const origin = new URL(request.url()).origin;
    if (!allowed.includes(origin)) watch.foreignRequests.push(request.url());
  });
  return watch;
}
