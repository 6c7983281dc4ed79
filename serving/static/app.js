"use strict";
// The web page: pick a transformation (grouped by pair, each with an example) and an image,
// POST it to /translate/{direction}, show the answer. One request at a time: a newer one
// aborts the older, whose answer is then ignored.
// Where the server has a fast student of the direction ("horse2zebra-fast"), its answer is
// shown first as a preview and replaced by the full model's when that arrives.

const $ = (id) => document.getElementById(id);
let lastFile = null;
let lastResult = null;
let current = null; // the AbortController of the request in flight
const objectUrls = { before: null, after: null };
const fastOf = {}; // direction -> its fast student's direction, where the server has one
const directions = {}; // direction -> what GET /directions says of it (choices only)
const FAST = "-fast";

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

// One object URL per slot; the one it replaces is revoked, so blobs do not pile up.
function objectUrl(slot, blob) {
  if (objectUrls[slot]) URL.revokeObjectURL(objectUrls[slot]);
  objectUrls[slot] = URL.createObjectURL(blob);
  return objectUrls[slot];
}

// The chooser: one group per pair ("horse ↔ zebra"), one option per direction, from the server.
async function loadDirections() {
  try {
    const response = await fetch("/directions");
    const info = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(info.error || `the server is not ready (${response.status})`, true);
      return;
    }
    const names = Object.keys(info.directions);
    const groups = {};
    for (const [name, d] of Object.entries(info.directions)) {
      const base = name.endsWith(FAST) ? name.slice(0, -FAST.length) : null;
      if (base && names.includes(base)) {
        fastOf[base] = name; // a preview for `base`, not a choice of its own
        continue;
      }
      directions[name] = d;
      const pair = d.domains ? d.domains.join(" ↔ ") : name;
      if (!groups[pair]) {
        groups[pair] = document.createElement("optgroup");
        groups[pair].label = pair;
        $("direction").append(groups[pair]);
      }
      groups[pair].append(new Option(d.source ? `${d.source} → ${d.target}` : name, name));
    }
    const largest = (info.limits && info.limits.max_resolution) || 512;
    for (const size of [128, 256, 384, 512].filter((s) => s <= largest)) {
      $("size").add(new Option(`${size} px`, String(size)));
    }
    showSample();
  } catch (error) {
    say(`cannot reach the server: ${error.message}`, true);
  }
}

// The chosen direction's example (a test photo and its translation) and its model.
function showSample() {
  const d = directions[$("direction").value];
  if (!d) return;
  $("model-info").textContent = `${d.model} ${d.version}, ${d.backend} on ${d.device}`;
  $("sample").hidden = !d.example;
  if (d.example) {
    $("sample-input").src = d.example.input;
    $("sample-output").src = d.example.output;
  }
}

async function tryExample() {
  const d = directions[$("direction").value];
  if (!d || !d.example) return;
  try {
    const response = await fetch(d.example.input);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    translate(new File([blob], `${d.source}.jpg`, { type: "image/jpeg" }));
  } catch (error) {
    say(`cannot load the example: ${error.message}`, true);
  }
}

class HttpError extends Error {}

// POST the image to one direction; the translated image as a Blob, or an HttpError.
async function post(direction, file, signal) {
  const query = new URLSearchParams({ format: $("format").value });
  if ($("size").value) query.set("resolution", $("size").value);
  const response = await fetch(`/translate/${encodeURIComponent(direction)}?${query}`, {
    method: "POST",
    body: file,
    headers: { "Content-Type": file.type || "application/octet-stream" },
    signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new HttpError(`${response.status}: ${body.error || response.statusText}`);
  }
  const blob = await response.blob();
  blob.timing = modelTime(response.headers.get("Server-Timing"));
  return blob;
}

// "model 31 ms of the server's 52 ms", from the answer's Server-Timing header.
function modelTime(header) {
  const ms = {};
  for (const entry of (header || "").split(",")) {
    const [name, dur] = entry.trim().split(";dur=");
    if (name && dur) ms[name] = Number(dur);
  }
  if (!("infer" in ms && "total" in ms)) return "";
  return ` (the model ${Math.round(ms.infer)} ms of the server's ${Math.round(ms.total)} ms)`;
}

// Show a translation; `which` says whether it is the fast preview or the full model's.
function show(result, direction, which) {
  lastResult = result;
  const format = $("format").value;
  const url = objectUrl("after", result);
  $("after").src = url;
  $("after-label").textContent = `After: ${which} (${direction})`;
  $("download").href = url;
  $("download").download = `${direction}.${format === "jpeg" ? "jpg" : format}`;
  $("download").hidden = false;
  const sample = new File([result], `x.${format}`, { type: result.type });
  $("share").hidden = !(navigator.canShare && navigator.canShare({ files: [sample] }));
}

async function translate(file) {
  if (!file) return;
  lastFile = file;
  if (current) current.abort();
  const request = new AbortController();
  current = request;
  $("before").src = objectUrl("before", file);
  $("after-label").textContent = "After";
  const direction = $("direction").value;
  say(`translating ${file.name || "image"} (${direction})…`);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let fullShown = false;
  const fast = fastOf[direction];
  if (fast) {
    post(fast, file, request.signal)
      .then((preview) => {
        if (current !== request || fullShown) return; // too late: never over a newer answer
        show(preview, fast, "fast preview");
        say(`preview in ${elapsed()} ms${preview.timing}; the full model is still working…`);
      })
      .catch(() => {}); // a missing preview is no error: the full answer follows
  }
  try {
    const result = await post(direction, file, request.signal);
    if (current !== request) return; // an older answer never replaces a newer one
    fullShown = true;
    show(result, direction, fast ? "full model" : "translated");
    say(`done in ${elapsed()} ms${result.timing}`);
  } catch (error) {
    if (error.name === "AbortError") return; // a newer request took its place
    if (current !== request) return;
    if (error instanceof HttpError) say(error.message, true);
    else say(`the request failed (network error?): ${error.message}`, true);
  } finally {
    if (current === request) current = null;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("pick").addEventListener("click", () => $("file").click());
  $("file").addEventListener("change", (e) => {
    translate(e.target.files[0]);
    e.target.value = ""; // choosing the same file again still counts as a change
  });
  $("direction").addEventListener("change", () => {
    showSample();
    translate(lastFile);
  });
  $("try-example").addEventListener("click", tryExample);
  $("format").addEventListener("change", () => translate(lastFile));
  $("size").addEventListener("change", () => translate(lastFile));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    translate(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.files][0];
    if (item) translate(item);
  });
  $("share").addEventListener("click", async () => {
    const format = $("format").value;
    const name = `${$("direction").value}.${format}`;
    const file = new File([lastResult], name, { type: lastResult.type });
    await navigator.share({ files: [file], title: "CycleGAN translation" }).catch(() => {});
  });
  loadDirections();
});
