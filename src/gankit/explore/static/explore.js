// gankit explore: the page.  Its whole state lives in its URL's query
// (run, class, start, n, psi, sel, a, b, t), so a view can be bookmarked and a
// test can open any state directly: re-roll and the sliders only rewrite the
// query and ask the server for what changed.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let state = null;
let gridRequest = 0; // answers to older grid requests are dropped

function readState() {
  const q = new URLSearchParams(location.search);
  const int = (name, fallback) => {
    const v = Number.parseInt(q.get(name), 10);
    return Number.isFinite(v) && v >= 0 ? v : fallback;
  };
  const num = (name, fallback) => {
    const v = Number.parseFloat(q.get(name));
    return Number.isFinite(v) && v >= 0 && v <= 1 ? v : fallback;
  };
  return {
    run: q.get("run") || info.runs[0].name,
    cls: q.get("class") || "",
    start: int("start", 0),
    n: Math.min(int("n", 16) || 16, info.max_batch),
    psi: num("psi", 1),
    sel: int("sel", null),
    a: int("a", null),
    b: int("b", null),
    t: num("t", 0.5),
  };
}

function writeState() {
  const q = new URLSearchParams();
  if (info.runs.length > 1) q.set("run", state.run);
  if (state.cls !== "") q.set("class", state.cls);
  for (const key of ["start", "n", "psi", "sel", "a", "b", "t"]) {
    if (state[key] !== null) q.set(key, state[key]);
  }
  history.replaceState(null, "", "?" + q.toString());
}

function apiQuery(extra) {
  const q = new URLSearchParams({ run: state.run, psi: state.psi, ...extra });
  if (state.cls !== "") q.set("class", state.cls);
  return q.toString();
}

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

async function getJSON(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function currentRun() {
  return info.runs.find((r) => r.name === state.run) || info.runs[0];
}

function scale() {
  const r = currentRun();
  return Math.max(1, Math.min(info.max_scale, Math.ceil(256 / Math.max(r.height, r.width))));
}

function tile(t) {
  const button = document.createElement("button");
  button.className = "tile" + (t.seed === state.sel ? " picked" : "");
  button.dataset.seed = t.seed;
  button.title = "seed " + t.seed;
  const img = document.createElement("img");
  img.src = "data:image/png;base64," + t.png;
  img.alt = "seed " + t.seed;
  const label = document.createElement("span");
  label.textContent = t.seed;
  button.append(img, label);
  button.addEventListener("click", () => pick(t.seed));
  return button;
}

async function loadGrid() {
  const id = ++gridRequest;
  const seeds = Array.from({ length: state.n }, (_, i) => state.start + i);
  const grid = $("grid");
  grid.dataset.ready = "0";
  setStatus("rendering " + seeds.length + " tiles...");
  try {
    const res = await getJSON("/api/tiles?" + apiQuery({ seeds: seeds.join(",") }));
    if (id !== gridRequest) return;
    grid.style.setProperty("--cols", Math.ceil(Math.sqrt(res.tiles.length)));
    grid.replaceChildren(...res.tiles.map(tile));
    grid.dataset.start = state.start;
    grid.dataset.psi = res.psi;
    grid.dataset.ready = "1";
    setStatus(res.tiles.length + " tiles: " + res.generated + " generated, " + res.cached + " from cache");
  } catch (err) {
    if (id === gridRequest) setStatus("error: " + err.message, true);
  }
}

function showLarge() {
  $("large").hidden = state.sel === null;
  if (state.sel === null) return;
  const q = apiQuery({ seed: state.sel, scale: scale() });
  $("large-img").src = "/api/image?" + q;
  $("large-seed").textContent = state.sel;
  $("large-download").href = "/api/image?" + q + "&download=1";
  for (const b of document.querySelectorAll(".tile")) {
    b.classList.toggle("picked", Number(b.dataset.seed) === state.sel);
  }
}

function showWalk() {
  const ready = state.a !== null && state.b !== null;
  $("walk").hidden = !ready;
  $("seed-a").textContent = state.a === null ? "?" : state.a;
  $("seed-b").textContent = state.b === null ? "?" : state.b;
  if (!ready) return;
  $("t").value = state.t;
  $("t-value").textContent = "t = " + Number(state.t).toFixed(2);
  const q = apiQuery({ a: state.a, b: state.b, t: state.t, scale: scale() });
  $("lerp-img").src = "/api/lerp?" + q;
  $("lerp-download").href = "/api/lerp?" + q + "&download=1";
}

function pick(seed) {
  state.sel = seed;
  if (state.a === null) state.a = seed;
  else if (state.b === null && seed !== state.a) state.b = seed;
  writeState();
  showLarge();
  showWalk();
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function refreshAll() {
  writeState();
  loadGrid();
  showLarge();
  showWalk();
}

function fillPickers() {
  const runs = $("run");
  runs.replaceChildren(...info.runs.map((r) => new Option(r.name, r.name, false, r.name === state.run)));
  $("run-pick").hidden = info.runs.length < 2;
  const classes = currentRun().classes;
  $("class-pick").hidden = !classes;
  $("class").replaceChildren(...(classes || []).map((c, i) => new Option(c, i, false, String(i) === state.cls)));
  if (classes && state.cls === "") state.cls = "0";
  if (!classes) state.cls = "";
}

function wire() {
  $("psi").value = state.psi;
  $("psi-value").textContent = state.psi.toFixed(2);
  $("n").value = String(state.n);
  const psiChanged = debounce(refreshAll, 150);
  $("psi").addEventListener("input", () => {
    state.psi = Number($("psi").value);
    $("psi-value").textContent = state.psi.toFixed(2);
    psiChanged();
  });
  $("t").addEventListener("input", () => {
    state.t = Number($("t").value);
    writeState();
    showWalk();
  });
  $("reroll").addEventListener("click", () => {
    state.start += state.n;
    refreshAll();
  });
  $("n").addEventListener("change", () => {
    state.n = Number($("n").value);
    refreshAll();
  });
  $("run").addEventListener("change", () => {
    state.run = $("run").value;
    state.cls = "";
    fillPickers();
    refreshAll();
  });
  $("class").addEventListener("change", () => {
    state.cls = $("class").value;
    refreshAll();
  });
  $("set-a").addEventListener("click", () => { state.a = state.sel; refreshAll(); });
  $("set-b").addEventListener("click", () => { state.b = state.sel; refreshAll(); });
}

async function main() {
  try {
    info = await getJSON("/api/info");
  } catch (err) {
    setStatus("error: " + err.message, true);
    return;
  }
  state = readState();
  fillPickers();
  wire();
  refreshAll();
}

main();
