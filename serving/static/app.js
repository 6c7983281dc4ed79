"use strict";
// The web page: pick a direction and an image, POST it to /translate/{direction}, show the
// answer. One request at a time: a newer one aborts the older, whose answer is then ignored.

const $ = (id) => document.getElementById(id);
let lastFile = null;
let lastResult = null;
let current = null; // the AbortController of the request in flight
const objectUrls = { before: null, after: null };

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

async function loadDirections() {
  try {
    const response = await fetch("/directions");
    const info = await response.json().catch(() => ({}));
    if (!response.ok) {
      say(info.error || `the server is not ready (${response.status})`, true);
      return;
    }
    for (const [name, d] of Object.entries(info.directions)) {
      const label = `${name}  (${d.model} ${d.version}, ${d.backend} ${d.device})`;
      $("direction").add(new Option(label, name));
    }
  } catch (error) {
    say(`cannot reach the server: ${error.message}`, true);
  }
}

async function translate(file) {
  if (!file) return;
  lastFile = file;
  if (current) current.abort();
  const request = new AbortController();
  current = request;
  $("before").src = objectUrl("before", file);
  const direction = $("direction").value;
  const format = $("format").value;
  say(`translating ${file.name || "image"} (${direction})…`);
  const started = performance.now();
  try {
    const response = await fetch(`/translate/${encodeURIComponent(direction)}?format=${format}`, {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
      signal: request.signal,
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      if (current === request) say(`${response.status}: ${body.error || response.statusText}`, true);
      return;
    }
    const result = await response.blob();
    if (current !== request) return; // an older answer never replaces a newer one
    lastResult = result;
    const url = objectUrl("after", result);
    $("after").src = url;
    $("download").href = url;
    $("download").download = `${direction}.${format === "jpeg" ? "jpg" : format}`;
    $("download").hidden = false;
    const sample = new File([result], `x.${format}`, { type: result.type });
    $("share").hidden = !(navigator.canShare && navigator.canShare({ files: [sample] }));
    say(`done in ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    if (error.name === "AbortError") return; // a newer request took its place
    if (current === request) say(`the request failed (network error?): ${error.message}`, true);
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
  $("direction").addEventListener("change", () => translate(lastFile));
  $("format").addEventListener("change", () => translate(lastFile));
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
