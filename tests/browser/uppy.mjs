// Uppy (`uppy` from npm: @uppy/core and @uppy/aws-s3, its browser bundle served from
// node_modules) in Chromium, wired to picforge as the README's recipe says: a small file by
// POST ticket, a large one in parts. The large upload is cut off after its first part (S3's
// part PUTs fail as on a dropped connection), the app pauses it, and resumes it once the
// connection is back: Uppy must list the parts S3 holds and send only the missing ones.
// Every part PUT is counted, and every one S3 accepted.
import { readFileSync } from "node:fs";
import { blockNetwork, launch, readArguments, report } from "./browser.mjs";

const args = readArguments();
const BUNDLE = "node_modules/uppy/dist/uppy.min.mjs";
// A real page of the API's (not one fulfilled here): Chromium lets a page reach S3 on a
// loopback address only from a document that was itself served from one.
const PAGE = `${args.apiUrl}/healthz`;

const browser = await launch(args);
const context = await browser.newContext();
const blocked = await blockNetwork(context, [args.apiUrl, args.s3Url]);
const partPuts = []; // {partNumber, outcome}: every attempt
const partsAccepted = []; // part numbers S3 answered 200 to
// The connection drops once the first part is in, and comes back once the upload is paused.
let online = false;
let interrupted = false;

// Uppy's bundle and the files, served at the API's origin (as an app would serve them);
// everything else under it goes to the real API.
await context.route(`${args.apiUrl}/uppy-test/**`, (route) => {
  const path = new URL(route.request().url()).pathname.replace("/uppy-test/", "");
  if (path === "uppy.min.mjs") {
    return route.fulfill({ contentType: "text/javascript", body: readFileSync(BUNDLE) });
  }
  const file = args.files.find((f) => f.name === decodeURIComponent(path));
  return route.fulfill({ contentType: file.type, body: readFileSync(file.path) });
});
await context.route(`${args.s3Url}/**`, (route) => {
  const request = route.request();
  const partNumber = new URL(request.url()).searchParams.get("partNumber");
  if (request.method() !== "PUT" || partNumber === null) return route.continue();
  if (!online && partPuts.some((put) => put.outcome === "sent")) {
    partPuts.push({ partNumber: Number(partNumber), outcome: "dropped" });
    if (!interrupted) {
      interrupted = true;
      setTimeout(async () => {
        await page.evaluate(() => window.pauseLarge());
        online = true;
        await page.evaluate(() => window.resumeLarge());
      }, 0);
    }
    return route.abort("connectionreset");
  }
  partPuts.push({ partNumber: Number(partNumber), outcome: "sent" });
  return route.continue();
});

context.on("requestfinished", async (request) => {
  const partNumber = new URL(request.url()).searchParams.get("partNumber");
  if (request.method() !== "PUT" || partNumber === null) return;
  const response = await request.response();
  if (response?.status() === 200) partsAccepted.push(Number(partNumber));
});

const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (error) => pageErrors.push(String(error)));
// The dropped connection is logged as errors, on purpose; kept for a failing test's message.
const consoleErrors = [];
page.on("console", (message) => {
  if (message.type() === "error") consoleErrors.push(message.text());
});
await page.goto(PAGE);

const seen = await page.evaluate(
  async ({ key, files, partSize, large }) => {
    const { Uppy, AwsS3 } = await import("/uppy-test/uppy.min.mjs");
    const calls = [];
    const api = async (method, path, body) => {
      calls.push(`${method} ${path.replace(/[0-9a-f-]{36}/, "{id}").replace(/multipart\/[^/]+/, "multipart/{upload}")}`);
      const response = await fetch(path, {
        method,
        headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
        body: body && JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status}`);
      return response.status === 204 ? null : response.json();
    };
    const create = (file, uploadMethod) =>
      api("POST", "/v1/images", {
        filename: file.name,
        content_type: file.type,
        size_bytes: file.size,
        upload_method: uploadMethod,
      });
    const at = (file, { uploadId }) =>
      `/v1/images/${uppy.getFile(file.id).meta.imageId}/multipart/${uploadId}`;

    const uppy = new Uppy({ autoProceed: false });
    uppy.use(AwsS3, {
      limit: 1, // one part at a time, so the cut falls between parts
      retryDelays: [1000, 1000, 1000], // the pause comes first
      shouldUseMultipart: (file) => file.size > partSize,
      getChunkSize: () => partSize,
      async getUploadParameters(file) {
        const { id, upload } = await create(file, "post");
        uppy.setFileMeta(file.id, { imageId: id });
        return { method: "POST", url: upload.url, fields: upload.fields };
      },
      async createMultipartUpload(file) {
        const { id, upload } = await create(file, "multipart");
        uppy.setFileMeta(file.id, { imageId: id });
        return { uploadId: upload.upload_id, key: upload.key };
      },
      async signPart(file, options) {
        const signed = await api("POST", `${at(file, options)}/parts`, {
          part_numbers: [options.partNumber],
        });
        return { url: signed.parts[0].url };
      },
      listParts: async (file, options) =>
        (await api("GET", `${at(file, options)}/parts`)).parts.map((p) => ({
          PartNumber: p.part_number,
          Size: p.size_bytes,
          ETag: p.etag,
        })),
      completeMultipartUpload: (file, options) =>
        api("POST", `${at(file, options)}/complete`, {
          parts: options.parts.map((p) => ({ part_number: p.PartNumber, etag: p.ETag })),
        }),
      abortMultipartUpload: (file, options) => api("DELETE", at(file, options)),
    });
    const errors = [];
    uppy.on("upload-error", (file, error) => errors.push(`${file.name}: ${error.message}`));
    const ids = {};
    for (const file of files) {
      const data = await (await fetch(`/uppy-test/${encodeURIComponent(file.name)}`)).blob();
      ids[file.name] = uppy.addFile({ name: file.name, type: file.type, data });
    }
    const largeId = ids[large];
    window.pauseLarge = () => {
      calls.push("paused");
      uppy.pauseResume(largeId);
    };
    window.resumeLarge = () => {
      calls.push("resumed");
      uppy.pauseResume(largeId);
    };
    const result = await uppy.upload();
    const images = {};
    for (const [name, id] of Object.entries(ids)) images[name] = uppy.getFile(id).meta.imageId;
    return {
      succeeded: result.successful.map((f) => f.name).sort(),
      failed: result.failed.map((f) => f.name),
      images,
      calls,
      errors,
    };
  },
  {
    key: args.key,
    files: args.files.map(({ name, type }) => ({ name, type })),
    partSize: args.partSize,
    large: args.large,
  },
);

await browser.close();
report({ ...seen, partPuts, partsAccepted, blocked, pageErrors, consoleErrors });
