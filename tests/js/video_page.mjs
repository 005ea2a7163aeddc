// Opens a clip's report page (tools/fit.py --video) in headless Chromium, waits for the 3D view, and
// seeks its video to two times and screenshots the animated face at each; checks that the video decodes.
// Prints a JSON summary; the pictures land in OUT_DIR.
//   node tests/js/video_page.mjs URL OUT_DIR T1 T2
// Chromium: $CHROMIUM, else /usr/bin/chromium (Debian's package; setup.sh installs it).
import { withViewerPage } from "./browser.mjs";

const [url, outDir, t1 = "0", t2 = "1"] = process.argv.slice(2);
if (!url || !outDir) {
  console.error("usage: node video_page.mjs URL OUT_DIR T1 T2");
  process.exit(2);
}
const result = { console: [] };
await withViewerPage(url, result, async (page) => {
  await page.waitForFunction(() => document.getElementById("clip-video").readyState >= 2, null,
                             { timeout: 60000 }).catch(() => {});
  result.video = await page.evaluate(() => {
    const v = document.getElementById("clip-video");
    return { readyState: v.readyState, width: v.videoWidth, height: v.videoHeight, duration: v.duration,
             error: v.error ? v.error.code : null };
  });
  // seek the page's video: the 3D view follows it (the path a user takes)
  for (const [name, t] of [["a", Number(t1)], ["b", Number(t2)]]) {
    result["set_" + name] = await page.evaluate((s) => new Promise((resolve) => {
      const v = document.getElementById("clip-video");
      v.pause();
      v.addEventListener("seeked", () => resolve(v.currentTime), { once: true });
      v.currentTime = s;
    }), t);
    await page.waitForTimeout(300);
    await page.locator("#viewer").screenshot({ path: `${outDir}/viewer_${name}.png` });
  }
  await page.screenshot({ path: `${outDir}/page.png`, fullPage: false });
});
console.log(JSON.stringify(result));
