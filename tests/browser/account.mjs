// Drives the account pages of issue 15 in headless Chromium, phone-sized and keyboard only:
// the one-time password link (choose a password), then /account (sign in, see the linked app,
// unlink it). Runs axe-core on every page and checks that nothing needs horizontal scrolling at
// 320 px. Prints one JSON object; tests/browser_account.rs asserts on it. Elements are found by
// their names and form actions, never by English text.
//
//   node account.mjs --base http://127.0.0.1:8080 --link '/set-password?token=…' \
//     --spare-link '/set-password?token=…' --new-password '…' --user alice --password '…' \
//     [--screenshots DIR]

import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const STEP_TIMEOUT_MS = 15_000;
const WHOLE_RUN_TIMEOUT_MS = 240_000;

const { values: opts } = parseArgs({
  options: {
    base: { type: "string" },
    link: { type: "string" },
    "spare-link": { type: "string" },
    "new-password": { type: "string" },
    user: { type: "string" },
    password: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
    screenshots: { type: "string" },
  },
});
for (const name of ["base", "link", "spare-link", "new-password", "user", "password"]) {
  if (!opts[name]) {
    console.error(`account.mjs: --${name} is required`);
    process.exit(2);
  }
}
const BASE = opts.base.replace(/\/$/, "");

setTimeout(() => {
  console.error(`account.mjs: gave up after ${WHOLE_RUN_TIMEOUT_MS / 1000} s`);
  process.exit(3);
}, WHOLE_RUN_TIMEOUT_MS).unref();

const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  locale: "en-US",
};
const NARROW = { ...PHONE, viewport: { width: 320, height: 568 } };

async function newPage(browser, device) {
  const context = await browser.newContext(device);
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const page = await context.newPage();
  const facts = { dialogs: [], foreign: [] };
  page.on("dialog", (d) => {
    facts.dialogs.push(d.type());
    d.dismiss().catch(() => {});
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(BASE + "/")) facts.foreign.push(r.url());
  });
  return { context, page, facts };
}

/// Presses Tab until `selector` has focus; how many presses (null: never).
async function tabTo(page, selector, limit = 20) {
  for (let presses = 1; presses <= limit; presses++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) {
      return presses;
    }
  }
  return null;
}

async function focusOutline(page) {
  return page.evaluate(() => {
    const style = getComputedStyle(document.activeElement);
    return { style: style.outlineStyle, width: style.outlineWidth };
  });
}

/// Presses Enter and waits for the page the form's POST (and any redirect) leads to.
async function enterAndLoad(page) {
  const loaded = page.waitForEvent("load");
  await page.keyboard.press("Enter");
  await loaded;
  return page.evaluate(() => document.readyState);
}

async function axe(page) {
  await page.evaluate(AXE_SOURCE);
  const run = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, {
      runOnly: {
        type: "tag",
        values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"],
      },
      resultTypes: ["violations"],
    }),
  );
  return {
    passes: run.passes.length,
    violations: run.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(" "), html: n.html })),
    })),
  };
}

async function reflow(page) {
  return page.evaluate(() => {
    const root = document.scrollingElement;
    const width = root.clientWidth;
    const sticking_out = [...document.body.querySelectorAll("*")]
      .filter((el) => el.getBoundingClientRect().right > width + 0.5)
      .map((el) => el.tagName.toLowerCase() + (el.name ? `[name=${el.name}]` : ""));
    return { scroll_width: root.scrollWidth, client_width: width, sticking_out };
  });
}

async function shot(page, name) {
  if (!opts.screenshots) return null;
  mkdirSync(opts.screenshots, { recursive: true });
  const file = join(opts.screenshots, `${name}-phone.png`);
  await page.screenshot({ path: file, fullPage: true, animations: "disabled", caret: "hide" });
  return file;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    timeout: 60_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ],
  });
  const out = { chromium: browser.version(), axe: {}, reflow: {}, screenshots: [] };
  const keep = (file) => file && out.screenshots.push(file);
  try {
    // 1. The one-time link: choose a password with the keyboard alone.
    {
      const { context, page, facts } = await newPage(browser, PHONE);
      const open = await page.goto(BASE + opts.link);
      out.link_status = open.status();
      out.axe.set_password = await axe(page);
      keep(await shot(page, "set-password"));
      out.tabs_to_new_password = await tabTo(page, "input[name=password]");
      out.new_password_outline = await focusOutline(page);
      await page.keyboard.type(opts["new-password"]);
      out.tabs_to_repeat = await tabTo(page, "input[name=repeat]", 3);
      await page.keyboard.type(opts["new-password"]);
      await enterAndLoad(page);
      out.password_saved = (await page.locator("[role=status]").count()) === 1;
      out.axe.password_saved = await axe(page);
      out.link_dialogs = facts.dialogs;
      out.link_foreign = facts.foreign;
      await context.close();
    }
    // 2. /account: sign in with the keyboard, see the linked app, unlink it.
    {
      const { context, page, facts } = await newPage(browser, PHONE);
      await page.goto(BASE + "/account");
      out.axe.account_sign_in = await axe(page);
      keep(await shot(page, "account-sign-in"));
      out.tabs_to_username = await tabTo(page, "input[name=username]");
      await page.keyboard.type(opts.user);
      out.tabs_to_password = await tabTo(page, "input[name=password]", 3);
      await page.keyboard.type(opts.password);
      await enterAndLoad(page);
      out.signed_in = page.url() === BASE + "/account";
      out.linked_before = await page.locator("form[action$='/unlink']").count();
      out.activity_entries = await page.locator("ul.activity li").count();
      out.axe.account = await axe(page);
      keep(await shot(page, "account"));
      out.tabs_to_unlink = await tabTo(page, "form[action$='/unlink'] button", 10);
      out.unlink_outline = await focusOutline(page);
      out.tabs_to_end_links = await tabTo(page, "input[name=end_links]", 10);
      out.end_links_outline = await focusOutline(page);
      // Back to the unlink button (Shift+Tab) and press it.
      let back = 0;
      while (back < 10 && !(await page.evaluate(() => document.activeElement?.matches("form[action$='/unlink'] button")))) {
        await page.keyboard.press("Shift+Tab");
        back++;
      }
      await enterAndLoad(page);
      out.after_unlink_url = page.url().replace(BASE, "");
      out.linked_after = await page.locator("form[action$='/unlink']").count();
      out.unlinked_notice = (await page.locator("[role=status]").count()) === 1;
      out.axe.account_after_unlink = await axe(page);
      // Two-factor sign-in: open the enrolment page with the keyboard.
      out.tabs_to_totp_start = await tabTo(page, "form[action$='/totp-start'] button", 20);
      await enterAndLoad(page);
      out.totp_qr = await page.locator(".qr svg").count();
      out.axe.totp_enrol = await axe(page);
      keep(await shot(page, "account-totp"));
      out.tabs_to_totp_code = await tabTo(page, "input[name=code]", 10);
      out.totp_code_outline = await focusOutline(page);
      out.account_dialogs = facts.dialogs;
      out.account_foreign = facts.foreign;
      await context.close();
    }
    // 3. 320 px: nothing scrolls sideways.
    {
      const { context, page } = await newPage(browser, NARROW);
      await page.goto(BASE + "/account");
      out.reflow.account_sign_in = await reflow(page);
      await page.locator("input[name=username]").fill(opts.user);
      await page.locator("input[name=password]").fill(opts.password);
      const loaded = page.waitForEvent("load");
      await page.locator("form button[type=submit]").first().click();
      await loaded;
      out.reflow.account = await reflow(page);
      const enrol = page.waitForEvent("load");
      await page.locator("form[action$='/totp-start'] button").click();
      await enrol;
      out.reflow.totp_enrol = await reflow(page);
      await page.goto(BASE + opts["spare-link"]);
      out.reflow.set_password = await reflow(page);
      await page.goto(BASE + opts.link);
      out.reflow.dead_link = await reflow(page);
      await context.close();
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}

main().catch((e) => {
  console.error(`account.mjs: ${e?.stack ?? e}`);
  process.exit(1);
});
