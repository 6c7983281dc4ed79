"use strict";
// The web page: pick a transformation (grouped by pair, each with an example) and an image,
// POST it to /translate/{direction}, show the answer over the original with a compare slider
// and a strength slider, then download or share it. One request at a time: a newer one
// aborts the older, whose answer is then ignored. Where the server has a fast student of the
// direction ("horse2zebra-fast"), its answer is shown first and replaced by the full model's.

const $ = (id) => document.getElementById(id);
const FAST = "-fast";
const EXTENSIONS = { png: "png", jpeg: "jpg", webp: "webp" };
const MAX_RETRIES = 4; // 503 answers (warming up, busy) retried by their Retry-After
const MAX_RETRY_WAIT_S = 10;

const fastOf = {}; // direction -> its fast student's direction, where the server has one
const directions = {}; // direction -> what GET /directions says of it (choices only)
let current = null; // the AbortController of the request in flight
let beforeUrl = null; // the object URL of the image shown as "before"
// What is shown: the original, the translation, and which direction and model made it.
const shown = { file: null, original: null, translated: null, blob: null, direction: null };

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
  $("status").setAttribute("role", isError ? "alert" : "status"); // errors interrupt
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

// POST the image to one direction; the answer as a Blob (with `.timing`), or an HttpError.
// A 503 with Retry-After (the server warming up or shedding load) is retried after that wait.
async function post(direction, file, signal, options = {}) {
  const query = new URLSearchParams({ format: options.format || "png" });
  if ($("size").value) query.set("resolution", $("size").value);
  if (options.strength !== undefined && options.strength < 1) {
    query.set("strength", String(options.strength));
  }
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`/translate/${encodeURIComponent(direction)}?${query}`, {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
      signal,
    });
    if (response.ok) {
      const blob = await response.blob();
      blob.timing = modelTime(response.headers.get("Server-Timing"));
      return blob;
    }
    const body = await response.json().catch(() => ({}));
    const reason = body.error || response.statusText;
    const wait = Number(response.headers.get("Retry-After"));
    if (response.status !== 503 || !(wait >= 0) || attempt >= MAX_RETRIES) {
      const tries = attempt > 0 ? ` (gave up after ${attempt + 1} tries)` : "";
      throw new HttpError(`${response.status}: ${reason}${tries}`);
    }
    const seconds = Math.min(Math.max(wait, 1), MAX_RETRY_WAIT_S);
    if (options.onRetry) options.onRetry(`${reason}; trying again in ${seconds} s…`);
    await sleep(seconds * 1000);
    if (signal && signal.aborted) throw new DOMException("aborted", "AbortError");
  }
}

// "the model 31 ms of the server's 52 ms", from the answer's Server-Timing header.
function modelTime(header) {
  const ms = {};
  for (const entry of (header || "").split(",")) {
    const [name, dur] = entry.trim().split(";dur=");
    if (name && dur) ms[name] = Number(dur);
  }
  if (!("infer" in ms && "total" in ms)) return "";
  return ` (the model ${Math.round(ms.infer)} ms of the server's ${Math.round(ms.total)} ms)`;
}

// Draw the original, then the translation over it at the strength shown: no round trip.
function render() {
  if (!shown.translated) return;
  const canvas = $("after");
  const base = shown.original || shown.translated;
  canvas.width = base.width;
  canvas.height = base.height;
  const context = canvas.getContext("2d");
  context.globalAlpha = 1;
  if (shown.original) context.drawImage(shown.original, 0, 0);
  context.globalAlpha = shown.original ? strength() : 1;
  context.drawImage(shown.translated, 0, 0, canvas.width, canvas.height);
  context.globalAlpha = 1;
  compare();
}

const strength = () => Number($("strength").value) / 100;

// The translation covers the left part of the picture, up to the compare slider.
function compare() {
  const value = Number($("compare").value);
  $("after").style.clipPath = `inset(0 ${100 - value}% 0 0)`;
  $("compare").setAttribute("aria-valuetext", `${value}% translation`);
  $("strength").setAttribute("aria-valuetext", `${$("strength").value}%`);
}

// Show a translation; `which` says whether it is the fast preview or the full model's.
async function show(result, direction, which, request) {
  const translated = await createImageBitmap(result);
  if (current !== request && current !== null) return; // a newer request took its place
  if (shown.translated) shown.translated.close();
  Object.assign(shown, { translated, blob: result, direction });
  render();
  $("result").hidden = false;
  $("after-label").textContent = `After: ${which} (${direction})`;
  const d = directions[direction] || directions[direction.slice(0, -FAST.length)] || {};
  $("ai-note").textContent =
    `Made by a model: ${direction} (${d.model || "?"} ${d.version || ""}). Downloads say so ` +
    "in their metadata (XMP: IPTC digital source type “trained algorithmic media”).";
}

async function translate(file) {
  if (!file) return;
  if (current) current.abort();
  const request = new AbortController();
  current = request;
  shown.file = file;
  if (beforeUrl) URL.revokeObjectURL(beforeUrl); // one object URL at a time
  beforeUrl = URL.createObjectURL(file);
  $("before").src = beforeUrl;
  const direction = $("direction").value;
  say(`translating ${file.name || "image"} (${direction})…`);
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  let fullShown = false;
  const retrying = (text) => current === request && say(text);
  try {
    const original = await createImageBitmap(file);
    if (current !== request) return;
    if (shown.original) shown.original.close();
    shown.original = original;
  } catch {
    // not an image this browser reads (TIFF, say): the server may still; the translation
    // is then shown alone, or the server says what is wrong with the file
    if (shown.original) shown.original.close();
    shown.original = null;
  }
  const fast = fastOf[direction];
  if (fast) {
    post(fast, file, request.signal, { format: "jpeg", onRetry: retrying }) // cheap to encode
      .then(async (preview) => {
        if (current !== request || fullShown) return; // too late: never over a newer answer
        await show(preview, fast, "fast preview", request);
        if (fullShown) return;
        say(`preview in ${elapsed()} ms${preview.timing}; the full model is still working…`);
      })
      .catch(() => {}); // a missing preview is no error: the full answer follows
  }
  try {
    const result = await post(direction, file, request.signal, { onRetry: retrying });
    if (current !== request) return; // an older answer never replaces a newer one
    fullShown = true;
    await show(result, direction, fast ? "full model" : "translated", request);
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

// The file to save or share: `<original name>-<direction>.<ext>`, at the strength shown.
// The server's own answer where it already is that (it carries the AI-made marks); else the
// server makes it again in that format and strength, marks included.
async function resultFile(format = $("format").value) {
  const base = ((shown.file && shown.file.name) || "image").replace(/\.[^.]*$/, "") || "image";
  const name = `${base}-${shown.direction}.${EXTENSIONS[format]}`;
  let blob = shown.blob;
  const asIs = format === "png" && strength() === 1 && blob.type === "image/png";
  if (!asIs) blob = await post(shown.direction, shown.file, undefined, { format, strength: strength() });
  return new File([blob], name, { type: blob.type });
}

async function download() {
  try {
    const file = await resultFile();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(file);
    link.download = file.name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    say(`saved ${file.name}`);
  } catch (error) {
    say(`cannot save: ${error.message}`, true);
  }
}

// Web Share with the file where the browser has it; elsewhere the image goes to the clipboard.
async function share() {
  try {
    const file = await resultFile();
    if (navigator.canShare && navigator.canShare({ files: [file] })) {
      await navigator.share({ files: [file], title: "CycleGAN translation" });
      say(`shared ${file.name}`);
      return;
    }
    if (!navigator.clipboard || typeof ClipboardItem === "undefined") {
      say("this browser can neither share files nor copy images: use Download", true);
      return;
    }
    const png = file.type === "image/png" ? file : await resultFile("png"); // what clipboards take
    await navigator.clipboard.write([new ClipboardItem({ "image/png": png })]);
    say(`copied ${png.name} to the clipboard: paste it where you want to share it`);
  } catch (error) {
    if (error.name === "AbortError") return; // the person closed the share sheet
    say(`cannot share: ${error.message}`, true);
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
    translate(shown.file);
  });
  $("size").addEventListener("change", () => translate(shown.file));
  $("try-example").addEventListener("click", tryExample);
  $("compare").addEventListener("input", compare);
  $("strength").addEventListener("input", render);
  $("download").addEventListener("click", download);
  $("share").addEventListener("click", share);
  // A drop anywhere is caught: the browser never leaves the page for the dropped file.
  document.addEventListener("dragover", (e) => {
    e.preventDefault();
    document.body.classList.add("over");
  });
  document.addEventListener("dragleave", () => document.body.classList.remove("over"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("over");
    translate(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.files][0];
    if (item) translate(item);
  });
  compare();
  loadDirections();
});
