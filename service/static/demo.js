// The upload page: declare each image, POST its bytes straight to S3 with the ticket (with
// progress), then follow the record until it is ready or failed. No framework, no build step.
"use strict";

const POLL_MS = 500;
const POLL_LIMIT_MS = 180000;
const TYPES_BY_EXTENSION = {
  jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp",
  gif: "image/gif", avif: "image/avif", heic: "image/heic", heif: "image/heif",
};

const keyInput = document.getElementById("api-key");
const notice = document.getElementById("notice");

function apiKey() {
  return keyInput.value.trim();
}

function say(message) {
  notice.textContent = message;
  notice.hidden = !message;
}

function contentType(file) {
  if (file.type) return file.type;
  const extension = file.name.split(".").pop().toLowerCase();
  return TYPES_BY_EXTENSION[extension] || "application/octet-stream";
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${apiKey()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.detail || `HTTP ${response.status}`);
    error.code = data.code || `http_${response.status}`;
    throw error;
  }
  return data;
}

// XMLHttpRequest rather than fetch: only it reports upload progress.
function sendToS3(ticket, file, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
    form.append("file", file);
    const request = new XMLHttpRequest();
    request.open("POST", ticket.url);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("load", () => {
      if (request.status >= 200 && request.status < 300) return resolve();
      // S3 explains a refusal in XML: <Error><Code>EntityTooLarge</Code>...
      const code = /<Code>([^<]+)<\/Code>/.exec(request.responseText || "");
      const error = new Error(`S3 refused the upload (HTTP ${request.status})`);
      error.code = code ? code[1] : `s3_http_${request.status}`;
      reject(error);
    });
    request.addEventListener("error", () => {
      const error = new Error("the upload to S3 did not get through");
      error.code = "network_error";
      reject(error);
    });
    request.send(form);
  });
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntilFinished(id) {
  const deadline = Date.now() + POLL_LIMIT_MS;
  for (;;) {
    const record = await api("GET", `/v1/images/${id}`);
    if (record.status === "ready" || record.status === "failed") return record;
    if (Date.now() > deadline) throw Object.assign(new Error("still processing"), { code: "timeout" });
    await sleep(POLL_MS);
  }
}

function showReady(card, record) {
  const preview = card.querySelector(".preview");
  const image = preview.querySelector("img");
  if (record.placeholder) preview.style.background = record.placeholder.dominant_color;
  const list = card.querySelector(".renditions");
  const renditions = [...record.renditions].sort(
    (a, b) => a.width * a.height - b.width * b.height || a.size_bytes - b.size_bytes,
  );
  for (const rendition of renditions) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = rendition.url;
    link.textContent = rendition.name;
    link.target = "_blank";
    link.rel = "noopener";
    const size = document.createElement("span");
    size.textContent =
      `${rendition.width}×${rendition.height} ${rendition.format} ${formatBytes(rendition.size_bytes)}`;
    item.append(link, size);
    list.append(item);
  }
  const [smallest] = renditions;
  if (smallest) {
    image.src = smallest.url;
    image.alt = `${record.filename}, ${smallest.name} rendition`;
    image.hidden = false;
  }
  const placeholder = record.placeholder ? `, placeholder ${record.placeholder.dominant_color}` : "";
  setState(card, "ready", `ready: ${record.width}×${record.height}${placeholder}`);
}

function setState(card, state, text) {
  card.dataset.state = state;
  card.querySelector(".state").textContent = text;
}

function fail(card, error) {
  card.dataset.code = error.code || "error";
  setState(card, "failed", `failed: ${error.code || "error"}: ${error.message}`);
}

async function uploadOne(file) {
  const card = document.getElementById("upload-template").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = `${file.name} (${formatBytes(file.size)})`;
  document.getElementById("uploads").prepend(card);
  const progress = card.querySelector("progress");
  try {
    setState(card, "declaring", "asking for an upload ticket…");
    const created = await api("POST", "/v1/images", {
      // The form POST this page sends, whatever the size (a large file would get a
      // multipart ticket otherwise: see the README's Uppy recipe for that).
      filename: file.name, content_type: contentType(file), size_bytes: file.size,
      upload_method: "post",
    });
    card.dataset.id = created.id;
    setState(card, "uploading", "uploading to S3: 0%");
    await sendToS3(created.upload, file, (fraction) => {
      progress.value = Math.round(fraction * 100);
      setState(card, "uploading", `uploading to S3: ${progress.value}%`);
    });
    progress.removeAttribute("value"); // indeterminate while the worker renders
    setState(card, "processing", "processing");
    const record = await waitUntilFinished(created.id);
    if (record.status === "ready") showReady(card, record);
    else fail(card, record.error || { code: "failed", message: "" });
  } catch (error) {
    fail(card, error);
  }
}

function uploadAll(files) {
  if (!apiKey()) {
    say("Paste an API key first.");
    keyInput.focus();
    return;
  }
  say("");
  sessionStorage.setItem("picforge-api-key", apiKey());
  for (const file of files) uploadOne(file);
}

async function offerDevKey() {
  const response = await fetch("/demo/config.json");
  if (!response.ok) return;
  const config = await response.json();
  if (!config.dev_api_key) return;
  const button = document.getElementById("use-dev-key");
  button.hidden = false;
  button.addEventListener("click", () => {
    keyInput.value = config.dev_api_key;
  });
}

function wireDropZone() {
  const zone = document.getElementById("drop");
  const picker = document.getElementById("files");
  picker.addEventListener("change", () => {
    uploadAll([...picker.files]);
    picker.value = "";
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") picker.click();
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) {
    zone.addEventListener(name, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    uploadAll([...event.dataTransfer.files]);
  });
}

keyInput.value = sessionStorage.getItem("picforge-api-key") || "";
wireDropZone();
offerDevKey();
