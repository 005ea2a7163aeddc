// Headless Chromium for the page tests (report_page.mjs, video_page.mjs): Debian's chromium ($CHROMIUM, else
// /usr/bin/chromium; setup.sh installs it) driven by playwright-core, software WebGL (SwiftShader).
import { chromium } from "playwright-core";

// Launches Chromium, opens `url`, records console errors into result.console, waits until the page's 3D
// view says ready or error (document.body.dataset.viewer) and runs `body(page)`; closes the browser.
export async function withViewerPage(url, result, body) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (m) => { if (m.type() === "error") result.console.push(m.text()); });
    page.on("pageerror", (e) => result.console.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => ["ready", "error"].includes(document.body.dataset.viewer), null,
                               { timeout: 120000 });
    result.viewer = await page.evaluate(() => document.body.dataset.viewer);
    result.status = await page.textContent("#viewer-status");
    await body(page);
  } finally {
    await browser.close();
  }
}
