// Headless Debian Chromium for *.browser.test.ts: one launch recipe and one set of page probes, so every
// browser test runs the browser the same way and fails on the same kinds of page trouble.
import { existsSync } from "node:fs";
import type { TestContext } from "node:test";
import { type Browser, chromium, type Page } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

/** No sandbox (CI containers), no GPU, and nothing that reaches the network on its own. */
export const CHROMIUM_FLAGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

export interface ProbedPage {
  page: Page;
  /**
   * Console errors and warnings, uncaught page errors and dialogs (alert/confirm/prompt, dismissed), each
   * prefixed with its kind: an injected `<script>alert(1)</script>` that ran shows up here.
   */
  errors: string[];
  /** URLs the page requested other than file: ones; pages klear writes must work offline. */
  requests: string[];
}

/**
 * Runs `body` with a fresh page in headless Chromium, closing the browser afterwards; skips the test with a
 * message naming the install command when Chromium is absent.
 */
export async function withChromiumPage(
  t: TestContext,
  body: (probe: ProbedPage) => Promise<void>,
): Promise<void> {
  if (!existsSync(CHROMIUM_PATH)) {
    t.skip(`${CHROMIUM_PATH} not installed (apt-get install -y chromium)`);
    return;
  }
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_FLAGS],
  });
  try {
    const page = await browser.newPage();
    const probe: ProbedPage = { page, errors: [], requests: [] };
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") probe.errors.push(`${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => probe.errors.push(`pageerror: ${e.message}`));
    page.on("dialog", (d) => {
      probe.errors.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    page.on("request", (r) => {
      if (!r.url().startsWith("file:")) probe.requests.push(r.url());
    });
    await body(probe);
  } finally {
    await browser.close();
  }
}
