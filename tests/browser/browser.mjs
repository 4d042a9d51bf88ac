// Shared by the browser scripts: Debian's Chromium through playwright-core (no browser is ever
// downloaded), and a network that reaches only the origins a test allows.
import { chromium } from "playwright-core";

export const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function readArguments() {
  return JSON.parse(process.argv[2]);
}

export async function launch({ executablePath }) {
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_FLAGS });
}

// Every request to an origin not in `allowed` is aborted and remembered: a page that needs the
// internet shows it as a blocked request (and, usually, as a page that never renders).
export async function blockNetwork(context, allowed) {
  const blocked = [];
  await context.route("**/*", (route) => {
    const url = route.request().url();
    const origin = url.startsWith("data:") || url.startsWith("blob:") ? null : new URL(url).origin;
    if (origin === null || allowed.includes(origin)) return route.continue();
    blocked.push(url);
    return route.abort("internetdisconnected");
  });
  return blocked;
}

export function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
