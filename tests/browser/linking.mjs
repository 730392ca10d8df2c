// Drives linkgate's account-linking pages in a real headless Chromium, the way the Alexa app's
// web view does: it opens /authorize, the customer types a username and password, taps Allow or
// Deny, and the page is sent to Amazon's redirect URI. That host is never reached: Playwright
// intercepts it (page.route), records the URL and answers with a tiny page.
//
// The script only observes and prints one JSON object on stdout; tests/browser.rs asserts on it
// (and exchanges the code it got at /token). Elements are found by the contract's attributes
// (input[name=username], button[name=decision][value=allow], …), never by their English text,
// so the checks hold in every language the pages are translated into.
//
//   node linking.mjs --base http://127.0.0.1:8080 --client alexa-skill \
//     --redirect https://pitangui.amazon.com/api/skill/link/M2TEST --user alice --password '…' \
//     [--checks success,wrong_password,reject,keyboard,reflow,axe,locale_de] [--screenshots DIR]
//
// With --screenshots DIR it saves PNGs of the four pages at phone and desktop sizes instead.

import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const ALL_CHECKS = ["success", "wrong_password", "reject", "keyboard", "reflow", "axe", "locale_de"];
const STEP_TIMEOUT_MS = 15_000;
const WHOLE_RUN_TIMEOUT_MS = 240_000;

const { values: opts } = parseArgs({
  options: {
    base: { type: "string" },
    client: { type: "string" },
    redirect: { type: "string" },
    user: { type: "string" },
    password: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
    checks: { type: "string", default: ALL_CHECKS.join(",") },
    screenshots: { type: "string" },
  },
});
for (const name of ["base", "client", "redirect", "user", "password"]) {
  if (!opts[name]) {
    console.error(`linking.mjs: --${name} is required`);
    process.exit(2);
  }
}
const BASE = opts.base.replace(/\/$/, "");
const REDIRECT_ORIGIN = new URL(opts.redirect).origin;

// A browser that hangs must fail the run, not the CI job.
setTimeout(() => {
  console.error(`linking.mjs: gave up after ${WHOLE_RUN_TIMEOUT_MS / 1000} s`);
  process.exit(3);
}, WHOLE_RUN_TIMEOUT_MS).unref();

// Alexa's state is a long JWT-like value; this one is over 4 KiB and mixes in every character
// that must be percent-encoded on the way in and out (+ / = space & # % quotes < > non-ASCII).
function longState() {
  const segment = Buffer.from("linkgate browser test ".repeat(40)).toString("base64url");
  let state = "";
  for (let i = 0; Buffer.byteLength(state) < 4600; i++) {
    state += `${segment.slice(0, 200)}.${i}+/=&?#%"'<> é✓😀\\~`;
  }
  return state;
}
const STATE = longState();

/// The URL the Alexa app opens: every value percent-encoded, nothing else added.
function authorizeUrl(clientId, state) {
  const params = [
    ["response_type", "code"],
    ["client_id", clientId],
    ["redirect_uri", opts.redirect],
    ["state", state],
    ["scope", "profile"],
  ];
  return `${BASE}/authorize?` + params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

// The Alexa app on Android opens account linking in a Chromium web view (`wv`).
const PHONE = {
  viewport: { width: 390, height: 844 },
  deviceScaleFactor: 2,
  isMobile: true,
  hasTouch: true,
  userAgent:
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 " +
    "(KHTML, like Gecko) Version/4.0 Chrome/156.0.0.0 Mobile Safari/537.36",
  locale: "en-US",
};
const DESKTOP = { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, locale: "en-US" };
// WCAG 1.4.10 (reflow) asks for no horizontal scrolling at 320 CSS px, which is what a
// 1280 px window shows at 400 % zoom.
const NARROW = { ...PHONE, viewport: { width: 320, height: 568 } };
// Browser zoom at 200 % in a 1280×800 window: each CSS pixel is two device pixels, so the page
// lays out in 640×400 CSS px. A 640×400 viewport with deviceScaleFactor 2 is exactly that
// (same media queries, same rem sizes, same pixels on screen); CSS `zoom` would not change the
// layout viewport the way real zoom does.
const ZOOM_200 = { viewport: { width: 640, height: 400 }, deviceScaleFactor: 2, locale: "en-US" };

// What the intercepted redirect URI answers: the app would close the web view here.
const BACK_IN_THE_APP = "<!doctype html><title>Back in the app</title><p>linked</p>";

const sel = {
  username: "input[name=username]",
  password: "input[name=password]",
  signIn: "form:has(input[name=password]) button[type=submit]",
  allow: "button[name=decision][value=allow]",
  deny: "button[name=decision][value=deny]",
  alert: "[role=alert]",
};

/// A fresh context (own cookies) whose navigations to the redirect host are caught and recorded.
///
/// Playwright's page.route() is not called for the request a redirect leads to
/// (microsoft/playwright#33882), and linkgate's answer to Allow is exactly such a redirect, so the
/// catching is done one level lower, with the DevTools protocol's Fetch domain, which does see it.
async function newSession(browser, device, extra = {}) {
  const context = await browser.newContext({ ...device, ...extra });
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  const touch = Boolean(device.hasTouch);
  const session = { context, touch, redirects: [], foreign: [], dialogs: [], popups: 0 };
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  cdp.on("Fetch.requestPaused", (event) => {
    if (event.resourceType === "Document") session.redirects.push(event.request.url);
    cdp
      .send("Fetch.fulfillRequest", {
        requestId: event.requestId,
        responseCode: 200,
        responseHeaders: [{ name: "Content-Type", value: "text/html" }],
        body: Buffer.from(BACK_IN_THE_APP).toString("base64"),
      })
      .catch(() => {});
  });
  await cdp.send("Fetch.enable", { patterns: [{ urlPattern: `${REDIRECT_ORIGIN}/*` }] });
  // linkgate's pages load nothing from elsewhere (the browser resolves no other host anyway).
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(BASE + "/") && !url.startsWith(REDIRECT_ORIGIN + "/")) {
      session.foreign.push(url);
    }
  });
  page.on("dialog", (dialog) => {
    session.dialogs.push(dialog.type());
    dialog.dismiss().catch(() => {});
  });
  context.on("page", () => session.popups++);
  session.page = page;
  return session;
}

/// Runs `action`, waits for the page the POST to /authorize it causes, returns its status.
async function postStatus(page, action) {
  const response = page.waitForResponse(
    (r) => r.request().method() === "POST" && r.url().startsWith(`${BASE}/authorize`),
  );
  const loaded = page.waitForEvent("load");
  await action();
  const status = (await response).status();
  await loaded;
  return status;
}

async function typeInto(page, selector, text, touch) {
  if (touch) await page.locator(selector).tap();
  else await page.locator(selector).focus();
  await page.keyboard.type(text);
}

/// Signs in with a tap on the form's submit button; returns the POST's status.
async function signIn(page, password, touch = true) {
  await typeInto(page, sel.username, opts.user, touch);
  await typeInto(page, sel.password, password, touch);
  return postStatus(page, () =>
    touch ? page.locator(sel.signIn).tap() : page.locator(sel.signIn).click(),
  );
}

async function waitForRedirect(page) {
  await page.waitForURL((url) => url.href.startsWith(REDIRECT_ORIGIN + "/"));
}

/// What the test asserts about a redirect back to the client.
function redirectFacts(session) {
  const url = session.redirects.at(-1) ?? null;
  if (!url) return { redirect_url: null, redirects: session.redirects.length };
  const query = url.includes("?") ? url.slice(url.indexOf("?") + 1) : "";
  const params = new URLSearchParams(query);
  const state = params.get("state");
  return {
    redirect_url: url.length > 300 ? url.slice(0, 300) + "…" : url,
    redirects: session.redirects.length,
    redirect_target: url.split("?")[0],
    code: params.get("code"),
    error: params.get("error"),
    state_identical: state === STATE,
    state_bytes_sent: Buffer.byteLength(STATE),
    state_bytes_returned: state === null ? null : Buffer.byteLength(state),
  };
}

function sessionFacts(session) {
  return { dialogs: session.dialogs, popups: session.popups, foreign_requests: session.foreign };
}

async function htmlLang(page) {
  return page.evaluate(() => document.documentElement.getAttribute("lang"));
}

/// success: open, type, tap Sign in, tap Allow → code and the same state at the redirect URI.
async function checkSuccess(browser, device = PHONE, extra = {}) {
  const s = await newSession(browser, device, extra);
  const { page } = s;
  const open = await page.goto(authorizeUrl(opts.client, STATE));
  const login = { status: open.status(), lang: await htmlLang(page) };
  const signInStatus = await signIn(page, opts.password);
  const consent = {
    status: signInStatus,
    on_linkgate: page.url().startsWith(BASE + "/"),
    lang: await htmlLang(page),
    has_allow: (await page.locator(sel.allow).count()) === 1,
    has_deny: (await page.locator(sel.deny).count()) === 1,
  };
  await page.locator(sel.allow).tap();
  await waitForRedirect(page);
  const result = { login, consent, ...redirectFacts(s), ...sessionFacts(s) };
  await s.context.close();
  return result;
}

/// wrong_password: the page comes back with an inline alert, no redirect; then the right
/// password on that same page links the account.
async function checkWrongPassword(browser) {
  const s = await newSession(browser, PHONE);
  const { page } = s;
  await page.goto(authorizeUrl(opts.client, STATE));
  const status = await signIn(page, opts.password + "-wrong");
  const alert = page.locator(sel.alert);
  const result = {
    status,
    on_linkgate: page.url().startsWith(BASE + "/"),
    alert_visible: (await alert.count()) === 1 && (await alert.isVisible()),
    alert_text_length: (await alert.count()) ? (await alert.innerText()).trim().length : 0,
    username_kept: await page.locator(sel.username).inputValue(),
    password_cleared: (await page.locator(sel.password).inputValue()) === "",
    username_describedby_alert: await page.evaluate(() => {
      const alert = document.querySelector("[role=alert]");
      const user = document.querySelector("input[name=username]");
      const ids = (user?.getAttribute("aria-describedby") ?? "").split(/\s+/);
      return Boolean(alert?.id) && ids.includes(alert.id);
    }),
    redirects_after_wrong: s.redirects.length,
  };
  // The customer corrects the password on the page they were shown.
  await page.locator(sel.password).fill("");
  await typeInto(page, sel.password, opts.password, true);
  result.retry_status = await postStatus(page, () => page.locator(sel.signIn).tap());
  await page.locator(sel.allow).tap();
  await waitForRedirect(page);
  result.retry = redirectFacts(s);
  Object.assign(result, sessionFacts(s));
  await s.context.close();
  return result;
}

/// reject: Deny → error=access_denied with the state, and no code.
async function checkReject(browser) {
  const s = await newSession(browser, PHONE);
  const { page } = s;
  await page.goto(authorizeUrl(opts.client, STATE));
  await signIn(page, opts.password);
  await page.locator(sel.deny).tap();
  await waitForRedirect(page);
  const result = { ...redirectFacts(s), ...sessionFacts(s) };
  await s.context.close();
  return result;
}

/// Presses Tab until `selector` has focus; returns how many presses it took (null: never).
async function tabTo(page, selector, limit = 12) {
  for (let presses = 1; presses <= limit; presses++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) {
      return presses;
    }
  }
  return null;
}

/// The focused element's outline, to see that keyboard focus is visible.
async function focusOutline(page) {
  return page.evaluate(() => {
    const style = getComputedStyle(document.activeElement);
    return { style: style.outlineStyle, width: style.outlineWidth };
  });
}

/// keyboard: Tab, type, Enter only (no mouse, no taps) from the login page to the redirect.
async function checkKeyboard(browser) {
  const s = await newSession(browser, DESKTOP);
  const { page } = s;
  await page.goto(authorizeUrl(opts.client, STATE));
  const result = { tabs_to_username: await tabTo(page, sel.username) };
  result.username_outline = await focusOutline(page);
  await page.keyboard.type(opts.user);
  result.tabs_to_password = await tabTo(page, sel.password);
  await page.keyboard.type(opts.password);
  result.sign_in_status = await postStatus(page, () => page.keyboard.press("Enter"));
  result.tabs_to_allow = await tabTo(page, sel.allow);
  result.allow_outline = await focusOutline(page);
  if (result.tabs_to_allow !== null) {
    await page.keyboard.press("Enter");
    await waitForRedirect(page);
  }
  Object.assign(result, redirectFacts(s), sessionFacts(s));
  await s.context.close();
  return result;
}

/// Brings a fresh session's page to one of the four pages the customer can see.
async function reach(session, which) {
  const { page } = session;
  if (which === "error") {
    await page.goto(authorizeUrl("no-such-client", STATE));
    return;
  }
  await page.goto(authorizeUrl(opts.client, STATE));
  if (which === "login") return;
  const password = which === "wrong_password" ? opts.password + "-wrong" : opts.password;
  await signIn(page, password, session.touch);
  const expect = which === "consent" ? sel.allow : sel.alert;
  await page.locator(expect).waitFor();
}

const PAGES = ["login", "consent", "wrong_password", "error"];

/// reflow: no horizontal scrolling and nothing sticking out, at 320 px and at 200 % zoom.
async function checkReflow(browser) {
  const result = {};
  for (const [name, device] of [["width_320", NARROW], ["zoom_200", ZOOM_200]]) {
    for (const which of PAGES) {
      const s = await newSession(browser, device);
      await reach(s, which);
      result[`${name}/${which}`] = await s.page.evaluate(() => {
        const root = document.scrollingElement;
        const width = root.clientWidth;
        const sticking_out = [...document.body.querySelectorAll("*")]
          .filter((el) => el.getBoundingClientRect().right > width + 0.5)
          .map((el) => el.tagName.toLowerCase() + (el.name ? `[name=${el.name}]` : ""));
        return { scroll_width: root.scrollWidth, client_width: width, sticking_out };
      });
      await s.context.close();
    }
  }
  return result;
}

/// axe: axe-core on each page, WCAG 2.0/2.1/2.2 level A and AA rules.
async function checkAxe(browser) {
  const result = {};
  for (const which of PAGES) {
    const s = await newSession(browser, PHONE);
    await reach(s, which);
    // evaluate() runs through the DevTools protocol, so the pages' strict CSP stays in force.
    await s.page.evaluate(AXE_SOURCE);
    const run = await s.page.evaluate(() =>
      // eslint-disable-next-line no-undef
      axe.run(document, {
        runOnly: {
          type: "tag",
          values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa"],
        },
        resultTypes: ["violations"],
      }),
    );
    result[which] = {
      axe_version: run.testEngine.version,
      passes: run.passes.length,
      violations: run.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        help: v.help,
        nodes: v.nodes.map((n) => ({ target: n.target.join(" "), html: n.html, summary: n.failureSummary })),
      })),
    };
    await s.context.close();
  }
  return result;
}

/// locale_de: a German phone (Accept-Language: de-DE) gets German pages and still links.
async function checkLocaleDe(browser) {
  const german = { ...PHONE, locale: "de-DE" };
  return checkSuccess(browser, german, { extraHTTPHeaders: { "Accept-Language": "de-DE,de;q=0.9" } });
}

const CHECKS = {
  success: (b) => checkSuccess(b),
  wrong_password: checkWrongPassword,
  reject: checkReject,
  keyboard: checkKeyboard,
  reflow: checkReflow,
  axe: checkAxe,
  locale_de: checkLocaleDe,
};

async function screenshots(browser, dir) {
  mkdirSync(dir, { recursive: true });
  const files = [];
  for (const [size, device] of [["phone", PHONE], ["desktop", DESKTOP]]) {
    for (const which of PAGES) {
      const s = await newSession(browser, device);
      await reach(s, which);
      const file = join(dir, `${which.replace("_", "-")}-${size}.png`);
      await s.page.screenshot({ path: file, animations: "disabled", caret: "hide" });
      files.push(file);
      await s.context.close();
    }
  }
  return files;
}

async function main() {
  const browser = await chromium.launch({
    executablePath: opts.chromium,
    headless: true,
    timeout: 60_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Only linkgate on loopback resolves; the redirect host is answered by newSession.
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    ],
  });
  const out = { chromium: browser.version(), state_bytes: Buffer.byteLength(STATE), checks: {} };
  try {
    if (opts.screenshots) {
      out.screenshots = await screenshots(browser, opts.screenshots);
    } else {
      for (const name of opts.checks.split(",").filter(Boolean)) {
        if (!CHECKS[name]) throw new Error(`unknown check ${name}; known: ${ALL_CHECKS}`);
        try {
          out.checks[name] = await CHECKS[name](browser);
        } catch (e) {
          // One broken path must not hide the others: record it and go on.
          out.checks[name] = { failed: String(e?.stack ?? e) };
        }
      }
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}

main().catch((e) => {
  console.error(`linking.mjs: ${e?.stack ?? e}`);
  process.exit(1);
});
