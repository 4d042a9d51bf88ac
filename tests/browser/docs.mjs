// /docs and /redoc with every origin but the API's blocked: both render every operation, and a
// reader can authorize with a key and try a request from Swagger UI.
import { blockNetwork, launch, readArguments, report } from "./browser.mjs";

const { apiUrl, apiKey, executablePath, artifacts } = readArguments();
const browser = await launch({ executablePath });
const result = {};
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const blocked = await blockNetwork(context, [new URL(apiUrl).origin]);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  // What the pages' Content-Security-Policy refused before it left the browser.
  const refused = [];
  page.on("console", (message) => {
    if (message.type() === "error" && message.text().includes("Content Security Policy")) {
      refused.push(message.text());
    }
  });

  await page.goto(`${apiUrl}/docs`);
  await page.locator(".opblock").first().waitFor({ timeout: 30000 });
  result.swaggerOperations = await page.locator(".opblock").count();
  result.swaggerTitle = await page.locator(".info .title").first().innerText();

  await page.getByRole("button", { name: /Authorize/ }).first().click();
  await page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first().fill(apiKey);
  await page.locator(".modal-ux button.modal-btn.authorize").click();
  await page.locator(".modal-ux button.btn-done").click();

  const listImages = page.locator("#operations-images-listImages");
  await listImages.locator(".opblock-summary").click();
  const tryItOut = listImages.getByRole("button", { name: "Try it out" });
  if (await tryItOut.count()) await tryItOut.click();
  const sent = page.waitForRequest((request) => new URL(request.url()).pathname === "/v1/images");
  await listImages.getByRole("button", { name: "Execute" }).click();
  result.tryItOutAuthorization = (await sent).headers().authorization || null;
  const status = listImages.locator(".live-responses-table tbody .response-col_status").first();
  await status.waitFor({ timeout: 30000 });
  result.tryItOutStatus = (await status.innerText()).trim();
  await page.screenshot({ path: `${artifacts}/docs-swagger.png`, fullPage: true });

  await page.goto(`${apiUrl}/redoc`);
  await page.locator("[data-section-id^='operation/']").first().waitFor({ timeout: 30000 });
  result.redocOperations = await page.locator("[data-section-id^='operation/']").count();
  await page.screenshot({ path: `${artifacts}/docs-redoc.png` });

  result.blocked = blocked;
  result.pageErrors = errors;
  result.refusedByPolicy = refused;
} finally {
  await browser.close();
}
report(result);
