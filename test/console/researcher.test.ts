import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decide } from "../helpers/admin.js";
import {
  type Browser,
  launchBrowser,
  screenshot,
  seriousViolations,
  watchPage,
} from "../helpers/browser.js";
import { EnvoyCheckClient } from "../helpers/envoy-client.js";
import { type ConsoleFixture, expectNothingStored, row, startConsoleFixture } from "./fixture.js";

// A researcher signs in with its Auth0-like issuer (PKCE) and sees and
// manages only its own keys, exactly as the API allows.
describe("key console: a researcher", () => {
  let f: ConsoleFixture;
  let browser: Browser;
  let page: Page;
  let check: EnvoyCheckClient;

  beforeAll(async () => {
    f = await startConsoleFixture();
    check = new EnvoyCheckClient(f.kw.ports.check);
    f.kw.store.create({ kind: "user", name: "Ada laptop", owner: "auth0|ada", tenant: "lab" });
    f.kw.store.create({ kind: "agent", name: "Ada runner", owner: "auth0|ada", tenant: "lab" });
    f.kw.store.create({ kind: "user", name: "Bob laptop", owner: "auth0|bob", tenant: "lab" });
    f.kw.store.create({ kind: "live", name: "Lab API key", owner: "admin|lab", tenant: "lab" });
    browser = await launchBrowser();
    page = await browser.newPage();
    page.setDefaultTimeout(20_000);
  });
  afterAll(async () => {
    await browser?.close();
    check?.close();
    await f?.close();
  });

  it("sees only its own keys", async () => {
    const watch = watchPage(page, [f.adminUrl, new URL(f.idp.issuer("research")).origin]);
    f.idp.signInAs("research", {
      sub: "auth0|ada",
      org_id: "lab",
      scope: "sources:read runs:read",
    });
    await page.goto(f.consoleUrl);
    await page.getByRole("button", { name: /\/research$/ }).click();
    await page.getByText("Signed in as auth0|ada (tenant lab)").waitFor();
    await row(page, "Ada laptop").waitFor();
    await row(page, "Ada runner").waitFor();
    // Both were minted in the same millisecond, so their order is the ids'.
    expect((await page.getByRole("rowheader").allTextContents()).sort()).toEqual([
      "Ada laptop",
      "Ada runner",
    ]);
    await screenshot(page, "20-researcher-keys");
    expect(await seriousViolations(page)).toEqual([]);
    expect(watch.foreignRequests).toEqual([]);
    expect(watch.cspViolations).toEqual([]);
  });

  it("creates a user key with its own scopes only, and a real Check allows it", async () => {
    await page.getByRole("button", { name: "Create key" }).click();
    const form = page.getByRole("dialog", { name: "Create key" });
    expect(await form.getByLabel("Kind").locator("option").allTextContents()).toEqual([
      "user: researcher key",
      "agent: agent or developer key",
    ]);
    expect(await form.getByRole("checkbox", { name: /sources:write/ }).isDisabled()).toBe(true);
    await form.getByLabel("Name").fill("Ada notebook");
    await form.getByRole("checkbox", { name: "sources:read" }).check();
    await screenshot(page, "21-researcher-create");
    expect(await seriousViolations(page)).toEqual([]);
    await form.getByRole("button", { name: "Create" }).click();
    const shown = page.getByRole("dialog", { name: "Key created: Ada notebook" });
    const secret = await shown.getByLabel("Secret").inputValue();
    expect(secret).toMatch(/^sk_user_[0-9a-f]{16}_[0-9a-f]{48}$/);
    await shown.getByRole("button", { name: "Done" }).click();
    await row(page, "Ada notebook").waitFor();
    expect(await decide(check, secret)).toBe("allow");
    expect(await page.getByText("Bob laptop").count()).toBe(0);
    await expectNothingStored(page);
  });

  it("is usable from the keyboard alone, with a visible focus ring", async () => {
    await page.getByRole("button", { name: "Create key" }).focus();
    await page.keyboard.press("Enter");
    const form = page.getByRole("dialog", { name: "Create key" });
    await form.waitFor();
    // Focus moved into the dialog; Escape closes it and gives focus back.
    expect(await page.evaluate("document.activeElement.closest('dialog') !== null")).toBe(true);
    await page.keyboard.press("Escape");
    await form.waitFor({ state: "detached" });
    expect(await page.evaluate("document.activeElement.textContent")).toBe("Create key");
    const outline = await page.evaluate(
      "getComputedStyle(document.activeElement).outlineStyle + ' ' + getComputedStyle(document.activeElement).outlineWidth",
    );
    expect(outline).toBe("solid 3px");
    // Tab order reaches a row action, which Enter opens.
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      if (await page.evaluate("document.activeElement.textContent.startsWith('Details')")) break;
    }
    await page.keyboard.press("Enter");
    await page.getByRole("dialog", { name: /^Key Ada/ }).waitFor();
    await page.keyboard.press("Escape");
  });

  it("stays readable at 200 % zoom: no sideways scrolling of the page", async () => {
    const zoomed = await browser.newPage();
    zoomed.setDefaultTimeout(20_000);
    // A 1280×800 window at 200 %: 640×400 CSS pixels, at twice the density.
    await zoomed.setViewportSize({ width: 640, height: 400 });
    f.idp.signInAs("research", { sub: "auth0|ada", org_id: "lab", scope: "sources:read" });
    await zoomed.goto(f.consoleUrl);
    await zoomed.getByRole("button", { name: /\/research$/ }).click();
    await row(zoomed, "Ada laptop").waitFor();
    await screenshot(zoomed, "22-researcher-keys-200pct");
    const wider = await zoomed.evaluate(`[...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap"))
      .map((e) => e.tagName + "." + e.className)`);
    expect(wider).toEqual([]);
    expect(await zoomed.evaluate("document.documentElement.scrollWidth <= window.innerWidth")).toBe(
      true,
    );
    expect(await seriousViolations(zoomed)).toEqual([]);
    await zoomed.close();
  });
});
