// Opens a fit's report page in headless Chromium, waits for the 3D view, screenshots it, moves one
// expression slider and screenshots again. Prints a JSON summary; the pictures land in OUT_DIR.
//   node tests/js/report_page.mjs URL OUT_DIR [SLIDER_NAME]
// Chromium: $CHROMIUM, else /usr/bin/chromium (Debian's package; setup.sh installs it).
import { withViewerPage } from "./browser.mjs";

const [url, outDir, sliderName = "jawOpen"] = process.argv.slice(2);
if (!url || !outDir) {
  console.error("usage: node report_page.mjs URL OUT_DIR [SLIDER_NAME]");
  process.exit(2);
}
const result = { console: [] };
await withViewerPage(url, result, async (page) => {
  result.sliders = await page.locator("input[type=range]").count();
  result.main_sliders = await page.locator("#sliders-main input[type=range]").count();
  await page.waitForTimeout(300);
  await page.locator("#viewer").screenshot({ path: `${outDir}/viewer_fitted.png` });
  await page.screenshot({ path: `${outDir}/page.png`, fullPage: false });
  const slider = page.locator(`input[data-target="${sliderName}"]`);
  result.slider_found = (await slider.count()) === 1;
  if (result.slider_found) {
    result.slider_before = Number(await slider.inputValue());
    await slider.fill("1");
    await page.waitForTimeout(300);
    result.slider_after = Number(await slider.inputValue());
    await page.locator("#viewer").screenshot({ path: `${outDir}/viewer_moved.png` });
  }
});
console.log(JSON.stringify(result));
