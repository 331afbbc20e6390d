import { setTimeout as sleep } from "node:timers/promises";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import {
  type Browser,
  launchBrowser,
  type PageWatch,
  screenshot,
  seriousViolations,
  watchPage,
} from "../helpers/browser.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { nowSeconds } from "../helpers/jwks.js";
import { type ConsoleFixture, expectNothingStored, row, startConsoleFixture } from "./fixture.js";

// End to end in real headless Chromium against a real keyward and a loopback
// identity provider: a tenant administrator signs in with the authorization
// code flow + PKCE and manages keys; every screen passes axe-core and is
// photographed into test/console/screenshots/.
describe("key console: a tenant administrator", () => {
  let f: ConsoleFixture;
  let browser: Browser;
  let page: Page;
  let watch: PageWatch;
  let check: EnvoyCheckClient;

  /** Screenshot and accessibility check of the screen as it is now. */
  async function screen(name: string) {
    await screenshot(page, name);
    expect(await seriousViolations(page), `axe on ${name}`).toEqual([]);
  }

  beforeAll(async () => {
    f = await startConsoleFixture();
    check = new EnvoyCheckClient(f.kw.ports.check);
    // Keys already in the tenant, so that the list has something to show.
    const seed = [
      { kind: "live", name: "Nightly export", scopes: ["sources:read", "items:read"] },
      { kind: "live", name: "Partner sync", scopes: ["items:write"] },
      { kind: "agent", name: "Build agent", scopes: ["runs:execute"] },
    ] as const;
    for (const key of seed) {
      f.kw.store.create({ ...key, scopes: [...key.scopes], tenant: "acme", owner: "admin|acme" });
    }
    f.kw.store.create({ kind: "live", name: "Globex key", tenant: "globex" });
    browser = await launchBrowser();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
    watch = watchPage(page, [f.adminUrl, new URL(f.idp.issuer("admin")).origin]);
  });
  afterAll(async () => {
    await browser?.close();
    check?.close();
    await f?.close();
  });

  it("signs in with the authorization code flow and PKCE, keeping the token in memory only", async () => {
    await page.goto(f.consoleUrl);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await screen("01-sign-in");

    f.idp.signInAs("admin", {
      sub: "admin|acme",
      org_id: "acme",
      scope: "sources:read sources:write items:read items:write runs:execute",
    });
    await page.getByRole("button", { name: /^Sign in with 127\.0\.0\.1:\d+\/admin$/ }).click();
    await page.getByRole("heading", { name: "Keys" }).waitFor();
    await expect
      .poll(() => page.getByText("Signed in as admin|acme (tenant acme)").count())
      .toBe(1);

    // What the console asked for, and that the IdP checked the verifier.
    const asked = f.idp.authorizations.at(-1);
    expect(asked?.get("code_challenge_method")).toBe("S256");
    expect(asked?.get("redirect_uri")).toBe(f.consoleUrl);
    expect(asked?.get("audience")).toBe("https://api.example.com");
    expect(asked?.get("state")?.length).toBeGreaterThanOrEqual(20);
    expect(f.idp.exchanges).toEqual([{ tenant: "admin", error: "", verifierLength: 43 }]);
    // The code left the address bar; nothing is in web storage or cookies.
    expect(page.url()).toBe(f.consoleUrl);
    await expectNothingStored(page);
  });

  it("lists the tenant's keys without another tenant's, with no layout shift", async () => {
    for (const name of ["Nightly export", "Partner sync", "Build agent"]) {
      await row(page, name).waitFor();
    }
    expect(await page.getByText("Globex key").count()).toBe(0);
    // Cumulative layout shift of this page load (Chromium's layout-shift entries).
    const shift = await page.evaluate(`new Promise((resolve) => {
      new PerformanceObserver((list) => {
        resolve(list.getEntries().reduce((sum, e) => sum + (e.hadRecentInput ? 0 : e.value), 0));
      }).observe({ type: "layout-shift", buffered: true });
      setTimeout(() => resolve(0), 500);
    })`);
    expect(shift).toBeLessThan(0.05);
    await screen("02-keys");
  });

  let secret = "";

  it("creates a key and shows its secret once, with a copy button", async () => {
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"], {
      origin: f.adminUrl,
    });
    await page.getByRole("button", { name: "Create key" }).click();
    const form = page.getByRole("dialog", { name: "Create key" });
    await form.waitFor();
    await form.getByLabel("Name").fill("CI importer");
    await form.getByRole("checkbox", { name: "sources:read" }).check();
    await form.getByRole("checkbox", { name: "items:write" }).check();
    // Scopes the administrator does not hold are offered but cannot be ticked.
    expect(await form.getByRole("checkbox", { name: /runs:apply/ }).isDisabled()).toBe(true);
    await form.getByLabel("Expires").selectOption({ label: "in 30 days" });
    await screen("03-create-key");
    await form.getByRole("button", { name: "Create" }).click();

    const shown = page.getByRole("dialog", { name: "Key created: CI importer" });
    await shown.waitFor();
    secret = await shown.getByLabel("Secret").inputValue();
    expect(secret).toMatch(/^sk_live_[0-9a-f]{16}_[0-9a-f]{48}$/);
    await expect.poll(() => shown.getByText("you will not see this again").count()).toBe(1);
    await shown.getByRole("button", { name: "Copy" }).click();
    await expect.poll(() => page.evaluate("navigator.clipboard.readText()")).toBe(secret);
    await screen("04-secret");
    await shown.getByRole("button", { name: "Done" }).click();

    // Gone from the page once closed; the new key is listed.
    await row(page, "CI importer").waitFor();
    expect(await page.content()).not.toContain(secret.slice(-48));
    await expectNothingStored(page);
  });

  it("made a key that a real Check allows", async () => {
    expect(await decide(check, secret)).toBe("allow");
  });

  it("rotates the key: a new secret, shown once; the old one stops working", async () => {
    await row(page, "CI importer").getByRole("button", { name: "Rotate" }).click();
    const confirm = page.getByRole("dialog", { name: "Rotate “CI importer”?" });
    await confirm.waitFor();
    await screen("05-rotate-confirm");
    await confirm.getByRole("button", { name: "Rotate key" }).click();
    const shown = page.getByRole("dialog", { name: "Key rotated: CI importer" });
    await shown.waitFor();
    const rotated = await shown.getByLabel("Secret").inputValue();
    expect(rotated).not.toBe(secret);
    expect(rotated.slice(0, 25)).toBe(secret.slice(0, 25));
    await shown.getByRole("button", { name: "Done" }).click();
    expect(await decide(check, secret)).toBe("invalid_token");
    expect(await decide(check, rotated)).toBe("allow");
    secret = rotated;
  });

  it("shows a key's details and its audit log", async () => {
    await row(page, "CI importer").getByRole("button", { name: "Details" }).click();
    const details = page.getByRole("dialog", { name: "Key CI importer" });
    await details.waitFor();
    const audit = details.getByRole("table", { name: "Audit log" });
    await audit.getByRole("cell", { name: "RotateKey" }).waitFor();
    await audit.getByRole("cell", { name: "CreateKey" }).waitFor();
    const actor = audit.getByRole("cell", {
      name: /^jwt:http:\/\/127\.0\.0\.1:\d+\/admin\/#admin\|acme$/,
    });
    // Changes only by default: the list's own reads (ListKeys) are not shown.
    expect(await actor.count()).toBe(2);
    const facts = details.locator("dl");
    expect(await facts.textContent()).toMatch(
      /Scopes(items:write sources:read|sources:read items:write)/,
    );
    await screen("06-details");
    await details.getByRole("button", { name: "Close" }).click();
  });

  it("shows the key's use by Check over the last day: two allows so far", async () => {
    // Check's counts reach the hourly buckets at the next flush (every few
    // seconds): reopen the details until they show, a bounded number of times.
    let shown = "";
    for (let tries = 0; tries < 100 && !/^2 allowed/.test(shown); tries++) {
      if (tries > 0) await sleep(200);
      await row(page, "CI importer").getByRole("button", { name: "Details" }).click();
      const details = page.getByRole("dialog", { name: "Key CI importer" });
      const usage = details.getByRole("region", { name: "Usage, last 24 hours" });
      await usage.getByText(/allowed/).waitFor();
      shown = (await usage.getByRole("status").textContent()) ?? "";
      if (/^2 allowed/.test(shown)) {
        const hours = usage.getByRole("table", { name: "Usage, last 24 hours" });
        expect(await hours.getByRole("row").count()).toBe(2); // the header and this hour
        await screen("06b-usage");
      }
      await details.getByRole("button", { name: "Close" }).click();
    }
    expect(shown).toBe("2 allowed · 0 denied");
  });

  it("suspends a key (Check answers key_disabled) and resumes it (Check allows again)", async () => {
    await row(page, "CI importer").getByRole("button", { name: "Suspend" }).click();
    const suspend = page.getByRole("dialog", { name: "Suspend “CI importer”?" });
    await suspend.waitFor();
    expect(await suspend.textContent()).toMatch(/key_disabled/);
    await screen("07a-suspend-confirm");
    await suspend.getByRole("button", { name: "Suspend key" }).click();
    await row(page, "CI importer").getByText("suspended", { exact: true }).waitFor();
    expect(await decide(check, secret)).toBe("key_disabled");

    await row(page, "CI importer").getByRole("button", { name: "Resume" }).click();
    const resume = page.getByRole("dialog", { name: "Resume “CI importer”?" });
    await resume.getByRole("button", { name: "Resume key" }).click();
    await row(page, "CI importer").getByText("active", { exact: true }).waitFor();
    expect(await decide(check, secret)).toBe("allow");
  });

  it("rotates with a grace period: the previous secret keeps working, and the details say until when", async () => {
    await row(page, "CI importer").getByRole("button", { name: "Rotate" }).click();
    const confirm = page.getByRole("dialog", { name: "Rotate “CI importer”?" });
    await confirm.getByLabel("The current secret").selectOption({ label: "works for 1 hour" });
    await screen("07b-rotate-grace");
    await confirm.getByRole("button", { name: "Rotate key" }).click();
    const shown = page.getByRole("dialog", { name: "Key rotated: CI importer" });
    const rotated = await shown.getByLabel("Secret").inputValue();
    await shown.getByRole("button", { name: "Done" }).click();
    expect(await decide(check, secret)).toBe("allow");
    expect(await decide(check, rotated)).toBe("allow");
    await page
      .getByRole("status")
      .getByText(/previous secret works until/)
      .waitFor();

    await row(page, "CI importer").getByRole("button", { name: "Details" }).click();
    const details = page.getByRole("dialog", { name: "Key CI importer" });
    expect(await details.locator("dl").textContent()).toMatch(/Previous secretworks until/);
    await details.getByRole("button", { name: "Close" }).click();
    secret = rotated;
  });

  it("revokes the key after a confirmation naming it; Check then answers key_revoked", async () => {
    await row(page, "CI importer").getByRole("button", { name: "Revoke" }).click();
    const confirm = page.getByRole("dialog", { name: "Revoke “CI importer”?" });
    await confirm.waitFor();
    expect(await confirm.textContent()).toMatch(/CI importer.*sk_live_[0-9a-f]{16}/);
    await screen("07-revoke-confirm");
    await confirm.getByRole("button", { name: "Revoke key" }).click();
    await page.getByText("Key “CI importer” revoked").waitFor();
    await row(page, "CI importer").getByText("revoked", { exact: true }).waitFor();
    expect(await decide(check, secret)).toBe("key_revoked");
  });

  it("shows a refusal of the API as a readable message", async () => {
    // Another administrator revokes "Partner sync" while this page still shows it active.
    const id = (
      await row(page, "Partner sync")
        .getByText(/^sk_live_/)
        .textContent()
    )?.slice(8);
    const revoked = await fetch(`${f.adminUrl}/v1/admin/keys/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${f.rootToken}` },
    });
    expect(revoked.status).toBe(200);
    await row(page, "Partner sync").getByRole("button", { name: "Rotate" }).click();
    const confirm = page.getByRole("dialog", { name: "Rotate “Partner sync”?" });
    await confirm.getByRole("button", { name: "Rotate key" }).click();
    const alert = confirm.getByRole("alert");
    await alert.getByText(`Refused: key ${id} is revoked and cannot be rotated.`).waitFor();
    await screen("08-refused");
    await confirm.getByRole("button", { name: "Cancel" }).click();
  });

  it("signs out and forgets the token", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await page.getByText("You are signed out").waitFor();
    expect(await page.getByRole("table").count()).toBe(0);
    await expectNothingStored(page);
    await screen("09-signed-out");
  });

  it("tells the person when the sign-in expires, and returns to the sign-in screen", async () => {
    f.idp.signInAs("admin", {
      sub: "admin|acme",
      org_id: "acme",
      scope: "sources:read",
      exp: nowSeconds() + 3,
    });
    await page.getByRole("button", { name: /\/admin$/ }).click();
    await page.getByRole("heading", { name: "Keys" }).waitFor();
    await page.getByText(/Your sign-in expired at .*Sign in again to continue\./).waitFor();
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await screen("10-expired");
  });

  it("refuses a sign-in answer whose state it did not issue", async () => {
    await page.goto(`${f.consoleUrl}?code=stolen&state=forged`);
    await page.getByText(/does not belong to a sign-in started here/).waitFor();
    expect(page.url()).toBe(f.consoleUrl);
    expect(f.idp.exchanges.filter((e) => e.error === "")).toHaveLength(2);
  });

  it("signs in with a pasted key, and says so when that key manages nothing", async () => {
    const plain = f.kw.store.create({ kind: "live", tenant: "acme", scopes: ["sources:read"] });
    await page.getByLabel("Token").fill(plain.secret);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByText("Not allowed: the caller may not manage keys.").waitFor();
    await screen("11-token-refused");
    await page.getByLabel("Token").fill(f.rootToken);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("heading", { name: "Keys" }).waitFor();
    await row(page, "Globex key").waitFor();
    await expectNothingStored(page);
  });

  it("made no third-party request, broke no CSP rule and threw no error", () => {
    expect(watch.foreignRequests).toEqual([]);
    expect(watch.cspViolations).toEqual([]);
    expect(watch.pageErrors).toEqual([]);
  });
});
