// /demo as a reader uses it: the dev key, three files picked at once; each card goes through
// upload progress and processing to its renditions or its failure code. On a phone, too.
import { blockNetwork, launch, readArguments, report } from "./browser.mjs";

const { apiUrl, s3Url, files, executablePath, artifacts, viewport, name } = readArguments();
const browser = await launch({ executablePath });
const result = {};
try {
  const context = await browser.newContext({ viewport, isMobile: viewport.width < 500 });
  const blocked = await blockNetwork(context, [new URL(apiUrl).origin, new URL(s3Url).origin]);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));

  await page.goto(`${apiUrl}/demo`);
  await page.getByRole("button", { name: "Use the dev key" }).click();
  // Progress as the page shows it: every percentage a card displayed while uploading.
  await page.exposeFunction("recordProgress", (text) => {
    (result.progress ??= []).push(text);
  });
  await page.evaluate(() => {
    new MutationObserver((mutations) => {
      for (const mutation of mutations) {
        const text = mutation.target.textContent || "";
        if (text.startsWith("uploading to S3")) window.recordProgress(text);
      }
    }).observe(document.getElementById("uploads"), { subtree: true, childList: true, characterData: true });
  });
  await page.locator("#files").setInputFiles(files);
  await page.waitForFunction(
    (count) => {
      const cards = [...document.querySelectorAll(".upload")];
      return cards.length === count && cards.every((c) => ["ready", "failed"].includes(c.dataset.state));
    },
    files.length,
    { timeout: 90000 },
  );
  // Thumbnails are real pictures, fetched from S3 and decoded.
  await page.waitForFunction(
    () => [...document.querySelectorAll(".upload[data-state=ready] .preview img")].every(
      (img) => img.complete && img.naturalWidth > 0,
    ),
    null,
    { timeout: 30000 },
  );
  result.cards = await page.$$eval(".upload", (cards) =>
    cards.map((card) => ({
      name: card.querySelector(".name").textContent,
      state: card.dataset.state,
      code: card.dataset.code || null,
      text: card.querySelector(".state").textContent,
      renditions: [...card.querySelectorAll(".renditions li")].map((li) => li.textContent),
      thumbnailWidth: card.querySelector(".preview img").hidden
        ? 0
        : card.querySelector(".preview img").naturalWidth,
    })),
  );
  result.overflowsHorizontally = await page.evaluate(
    () => document.documentElement.scrollWidth > window.innerWidth,
  );
  await page.screenshot({ path: `${artifacts}/demo-${name}.png`, fullPage: true });
  result.blocked = blocked;
  result.pageErrors = errors;
} finally {
  await browser.close();
}
report(result);
