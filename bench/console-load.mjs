// How fast the key console shows a tenant's keys when the tenant holds
// 10,000 of them (issue 22: under 300 ms on loopback). A real keyward (dist/)
// with 10,000 live keys in tenant "acme" and 10,000 in other tenants; a
// tenant administrator (admin-portal JWT) signs in by pasting its token in
// headless Chromium, and the time is taken inside the page, from the click
// on `Sign in` (or `Next page`) until the table holds the page's 50 rows.
//
//   npm run build && node bench/console-load.mjs [rounds]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { createKeyward } from "../dist/app/keyward.js";
import { loadConfig } from "../dist/config/load.js";
import { openDatabase } from "../dist/keys/db.js";
import { KeyRepository } from "../dist/keys/repository.js";
import { createLogger } from "../dist/lib/log.js";
import { createIssuer } from "./jwt.mjs";

const ROUNDS = Number(process.argv[2] ?? 7);
const TENANT_KEYS = 10_000;
const dir = mkdtempSync(join(tmpdir(), "keyward-console-bench-"));
const database = join(dir, "keys.db");
const issuer = createIssuer(join(dir, "jwks.json"));

// Seed: 10,000 keys in acme, 10,000 spread over other tenants.
const seedDb = openDatabase(database);
const store = new KeyRepository(seedDb);
const started = Date.now();
seedDb.transaction(() => {
  for (let i = 0; i < TENANT_KEYS; i++) {
    store.create({ kind: "live", name: `acme key ${i}`, tenant: "acme", scopes: ["sources:read"] });
    store.create({ kind: "live", name: `other key ${i}`, tenant: `t${i % 50}` });
  }
})();
seedDb.close();
console.log(`seeded ${2 * TENANT_KEYS} keys in ${Date.now() - started} ms`);

const config = loadConfig({
  env: {},
  overrides: {
    database,
    policy: "deploy/policy.yaml",
    listen: { host: "127.0.0.1", check: 0, admin: 0, http: 0 },
    issuers: [{ ...issuer.config, role: "admin", tenant_claim: "org_id" }],
  },
});
const keyward = await createKeyward(config, { logger: createLogger({ level: "silent" }) });
const ports = await keyward.start();
const url = `http://127.0.0.1:${ports.admin}/console/`;
const profile = mkdtempSync(join(tmpdir(), "keyward-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.KEYWARD_CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

// A function, not a string: the console's CSP forbids the eval a string predicate needs.
const ROWS = () => document.querySelectorAll("table.keys tbody th[scope=row]").length === 50;
const timings = { open: [], signIn: [], nextPage: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    const page = await context.newPage();
    await page.goto(url);
    await page.getByLabel("Token").waitFor();
    // Navigation start → sign-in form on screen (HTML, JS, CSS, config.json).
    timings.open.push(await page.evaluate("performance.now()"));
    await page.getByLabel("Token").fill(issuer.token(0, { org_id: "acme", sub: "admin|acme" }));
    timings.signIn.push(await timeUntil(page, "Sign in", ROWS));
    timings.nextPage.push(await timeUntil(page, "Next page", ROWS));
    await page.close();
  }
} finally {
  await context.close();
  await keyward.close();
  rmSync(profile, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}

/** Milliseconds, measured in the page, from a click on `button` until `condition` holds. */
async function timeUntil(page, button, condition) {
  await page.evaluate("window.__before = performance.now()");
  await page.getByRole("button", { name: button, exact: true }).click();
  await page.waitForFunction(condition, undefined, { polling: "raf" });
  return page.evaluate("performance.now() - window.__before");
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const show = (values) =>
  `median ${median(values).toFixed(0)} ms (min ${Math.min(...values).toFixed(0)}, max ${Math.max(...values).toFixed(0)})`;
console.log(`${ROUNDS} rounds, ${TENANT_KEYS} keys in the tenant, 50 per page`);
console.log(`page open → sign-in form:      ${show(timings.open)}`);
console.log(`Sign in → first 50 keys shown: ${show(timings.signIn)}`);
console.log(`Next page → next 50 shown:     ${show(timings.nextPage)}`);
