// The page: three views over the router's JSON API (/pairs, /{pair}, /shards, /alerts).
// Plain script, no build step; the chart is uPlot (vendor/uplot). The URL's query string
// holds the view, pair and window, so a link opens the same view.
// window.pageState exposes what is drawn (read by the browser tests and the benchmark).
"use strict";

const WINDOWS = ["-1h", "-6h", "-24h", "-7d"];
const DEFAULT_WINDOW = "-24h";
// Prices are polled whole (the rank and the prices stay of one answer); a week's chart
// does not move visibly each minute, so it is asked less often.
const POLL_S = { "-1h": 30, "-6h": 30, "-24h": 30, "-7d": 300 };
const KEY_STORAGE = "federation.apiKey";

const state = {
  view: "pair",
  pair: null,
  window: DEFAULT_WINDOW,
  answer: null, // the last GET /{pair} answer, parsed
  chart: null, // the uPlot instance
  pairs: [],
  shards: null,
  loads: 0, // pair answers drawn since the page opened
  drawnAt: null, // performance.now() when the last pair answer was put in the page
  chartDrawnAt: null, // performance.now() when uPlot last drew its canvas
};
window.pageState = state;

const $ = (selector) => document.querySelector(selector);

// ---- errors: every API failure becomes a message, never a blank page ----

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `the router answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

function showMessage(text) {
  const box = $("#message");
  box.textContent = text;
  box.hidden = !text;
}

function describe(err) {
  if (err instanceof ApiError) {
    const where = err.body && err.body.parameter ? ` (${err.body.parameter})` : "";
    return `${err.message}${where} [${err.status}]`;
  }
  if (err && err.name === "AbortError") return "";
  return `the router could not be reached: ${err && err.message ? err.message : err}`;
}

window.addEventListener("error", (event) => showMessage(`page error: ${event.message}`));
window.addEventListener("unhandledrejection", (event) => showMessage(describe(event.reason)));

async function api(path, options = {}) {
  const early = window.earlyAnswer;
  window.earlyAnswer = null; // only the first request can be the one asked for early
  const taken = early && early.path === path && !options.method;
  const response = await (taken ? early.response : fetch(path, options));
  if (response.status === 204) return null;
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    if (response.ok) throw err;
  }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// ---- the URL ----

function readUrl() {
  const params = new URLSearchParams(location.search);
  const view = params.get("view");
  state.view = ["pair", "shards", "alerts"].includes(view) ? view : "pair";
  state.pair = (params.get("pair") || "").trim().toLowerCase() || null;
  const win = params.get("window");
  state.window = WINDOWS.includes(win) ? win : DEFAULT_WINDOW;
  const refresh = Number(params.get("refresh"));
  state.refreshS = Number.isFinite(refresh) && refresh >= 1 ? refresh : null;
}

function writeUrl(push) {
  const params = new URLSearchParams();
  params.set("view", state.view);
  if (state.pair) params.set("pair", state.pair);
  params.set("window", state.window);
  if (state.refreshS) params.set("refresh", String(state.refreshS));
  const url = `${location.pathname}?${params}`;
  if (url !== location.pathname + location.search) {
    history[push ? "pushState" : "replaceState"](null, "", url);
  }
}

// ---- formatting ----

const isoTime = (ms) => new Date(ms).toISOString().replace("T", " ").replace(".000Z", "Z");

function formatPrice(value) {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  if (abs >= 1000) return value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  if (abs >= 1) return value.toLocaleString("en-US", { maximumFractionDigits: 4 });
  return value.toPrecision(4);
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function colour(i) {
  return `hsl(${(i * 137.508) % 360}, 65%, 45%)`;
}

// ---- views ----

function showView() {
  for (const name of ["pair", "shards", "alerts"]) {
    $(`#view-${name}`).hidden = name !== state.view;
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === state.view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const button of document.querySelectorAll("[data-window]")) {
    button.setAttribute("aria-pressed", String(button.dataset.window === state.window));
  }
  $("#pair-input").value = state.pair || "";
  document.body.dataset.view = state.view;
}

let poller = null;
let inFlight = null;

function schedule(run, seconds) {
  clearTimeout(poller);
  poller = setTimeout(function tick() {
    if (document.visibilityState === "hidden") {
      poller = setTimeout(tick, 1000); // no polling in a background tab
      return;
    }
    run();
  }, seconds * 1000);
}

async function render() {
  clearTimeout(poller);
  if (inFlight) inFlight.abort();
  showView();
  showMessage("");
  if (state.view === "pair") await loadPair();
  else if (state.view === "shards") await loadShards();
  else await loadAlerts();
}

function go(changes) {
  Object.assign(state, changes);
  writeUrl(true);
  render();
}

// ---- the pair view ----

async function loadPairs() {
  const body = await api("/pairs");
  state.pairs = body.pairs.map((p) => p.pair);
  const list = $("#pair-list");
  list.replaceChildren(...state.pairs.map((p) => new Option(p)));
  $("#pair-count").textContent = `${body.count} pairs`;
  return body;
}

async function loadPair() {
  if (!state.pair) {
    if (!state.pairs.length) await loadPairs().catch((err) => showMessage(describe(err)));
    state.pair = state.pairs.includes("btcusd") ? "btcusd" : state.pairs[0] || null;
    if (!state.pair) {
      showMessage("no pair is known yet: has the ingester written anything?");
      return;
    }
    writeUrl(false);
    $("#pair-input").value = state.pair;
  }
  const controller = new AbortController();
  inFlight = controller;
  const pair = state.pair;
  const win = state.window;
  document.body.dataset.state = "loading";
  try {
    const params = new URLSearchParams({ duration: win });
    const answer = await api(`/${encodeURIComponent(pair)}?${params}`, {
      signal: controller.signal,
    });
    if (pair !== state.pair || win !== state.window) return; // a newer choice won
    drawPair(answer);
    showMessage(""); // a poll that succeeds clears the error of one that failed
    document.body.dataset.state = "drawn";
  } catch (err) {
    if (controller.signal.aborted) return;
    document.body.dataset.state = "error";
    showMessage(describe(err));
  } finally {
    if (inFlight === controller) inFlight = null;
  }
  if (state.view === "pair" && pair === state.pair) {
    schedule(loadPair, state.refreshS || POLL_S[state.window]);
  }
}

function drawPair(answer) {
  state.answer = answer;
  // One column per time, one series per exchange (uPlot's aligned data; gaps are null).
  // The API orders prices by time, so a new time opens the next column: one pass.
  const exchanges = [...new Set(answer.prices.map((p) => p.exchange))].sort();
  const row = new Map(exchanges.map((e, i) => [e, i]));
  const xs = [];
  const ys = exchanges.map(() => []);
  const latest = new Map();
  let last = null;
  for (const p of answer.prices) {
    if (p.time !== last) {
      xs.push(Date.parse(p.time) / 1000);
      for (const y of ys) y.push(null);
      last = p.time;
    }
    ys[row.get(p.exchange)][xs.length - 1] = p.price;
    latest.set(p.exchange, p);
  }
  const data = [xs, ...ys];
  drawChart(answer.pair, exchanges, data);

  $("#rank").textContent = answer.rank || "none (no point in the window)";
  $("#rank-as-of").textContent = answer.rank_as_of
    ? isoTime(Date.parse(answer.rank_as_of))
    : "computed for this request";
  $("#points").textContent = `${answer.prices.length.toLocaleString("en-US")} on ${exchanges.length} exchanges`;
  $("#updated").textContent = isoTime(Date.now());
  const partial = $("#partial");
  partial.hidden = !answer.partial;
  partial.textContent = answer.partial
    ? `Partial answer: shard(s) ${answer.missing_shards.join(", ")} did not answer; some prices may be missing.`
    : "";

  const body = $("#latest tbody");
  body.replaceChildren();
  for (const exchange of exchanges) {
    const p = latest.get(exchange);
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = exchange;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = colour(row.get(exchange));
    swatch.setAttribute("aria-hidden", "true");
    th.prepend(swatch);
    tr.append(th);
    cell(tr, formatPrice(p.price), "num");
    cell(tr, isoTime(Date.parse(p.time)));
  }
  state.loads += 1;
  state.drawnAt = performance.now();
}

function chartSize() {
  const width = Math.max(280, $("#chart").clientWidth || 600);
  return { width, height: Math.round(Math.min(420, Math.max(220, width * 0.45))) };
}

function drawChart(pair, exchanges, data) {
  const box = $("#chart");
  box.setAttribute(
    "aria-label",
    `Price of ${pair} on ${exchanges.length} exchanges over ${state.window.slice(1)}`,
  );
  const labels = state.chart ? state.chart.series.slice(1).map((s) => s.label) : null;
  if (state.chart && labels.join() === exchanges.join()) {
    state.chart.setData(data);
    return;
  }
  if (state.chart) state.chart.destroy();
  const options = {
    ...chartSize(),
    series: [
      { label: "time (UTC)", value: (u, v) => (v == null ? "–" : isoTime(v * 1000)) },
      ...exchanges.map((e, i) => ({
        label: e,
        stroke: colour(i),
        width: 1,
        spanGaps: true,
        value: (u, v) => formatPrice(v),
      })),
    ],
    scales: { x: { time: true } },
    axes: [{}, { size: 80, values: (u, splits) => splits.map(formatPrice) }],
    legend: { live: true },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    hooks: { draw: [() => (state.chartDrawnAt = performance.now())] },
  };
  state.chart = new uPlot(options, data, box);
}

// What the chart holds, as the API's points: [time ms, exchange, price], time order.
state.chartPoints = function chartPoints() {
  const chart = state.chart;
  if (!chart) return [];
  const points = [];
  const xs = chart.data[0];
  for (let j = 0; j < xs.length; j++) {
    for (let i = 1; i < chart.data.length; i++) {
      const y = chart.data[i][j];
      if (y !== null && y !== undefined) {
        points.push([Math.round(xs[j] * 1000), chart.series[i].label, y]);
      }
    }
  }
  return points;
};

window.addEventListener("resize", () => {
  if (state.chart) state.chart.setSize(chartSize());
});

// ---- the shard view ----

async function loadShards() {
  const controller = new AbortController();
  inFlight = controller;
  document.body.dataset.state = "loading";
  try {
    const body = await api("/shards", { signal: controller.signal });
    state.shards = body;
    drawShards(body);
    showMessage("");
    document.body.dataset.state = "drawn";
  } catch (err) {
    if (controller.signal.aborted) return;
    document.body.dataset.state = "error";
    showMessage(describe(err));
  }
  if (state.view === "shards") schedule(loadShards, state.refreshS || 10);
}

function drawShards(body) {
  const total = body.shards.reduce((sum, s) => sum + (s.series || 0), 0);
  const misplaced = body.shards.reduce((sum, s) => sum + (s.misplaced_pairs || 0), 0);
  $("#map-version").textContent = body.map_version;
  $("#map-loaded").textContent = body.loaded_at ? isoTime(Date.parse(body.loaded_at)) : "–";
  $("#map-replication").textContent = body.replication;
  $("#map-misplaced").textContent =
    misplaced === 0 ? "0 (no rebalance pending)" : `${misplaced} (a rebalance is due or under way)`;
  $("#map-error").textContent = body.last_reload_error || "none";
  const tbody = $("#shards tbody");
  tbody.replaceChildren();
  for (const s of body.shards) {
    const tr = tbody.insertRow();
    tr.dataset.shard = s.name;
    tr.dataset.up = String(s.up);
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = s.name;
    th.title = s.url;
    tr.append(th);
    const stateText = s.up ? (s.drain ? "up, draining" : "up") : "down";
    const stateCell = cell(tr, stateText, s.up ? "up" : "down");
    if (!s.up && s.error) stateCell.title = s.error;
    cell(tr, s.up ? `${s.latency_ms} ms` : "–", "num");
    cell(tr, s.up ? s.series.toLocaleString("en-US") : "–", "num");
    const share = total && s.up ? s.series / total : 0;
    const bar = document.createElement("meter");
    bar.min = 0;
    bar.max = 1;
    bar.value = share;
    bar.setAttribute("aria-label", `${s.name}: ${(share * 100).toFixed(1)}% of the series`);
    const barCell = tr.insertCell();
    barCell.append(bar, ` ${(share * 100).toFixed(0)}%`);
    cell(tr, s.up ? s.pairs.toLocaleString("en-US") : "–", "num");
    const mis = cell(tr, s.up ? String(s.misplaced_pairs) : "–", "num");
    if (s.up && s.misplaced_pairs) mis.title = s.misplaced_examples.join(", ");
    cell(tr, s.spool ? `${s.spool.batches} (${s.spool.points} points)` : "none", "num");
  }
}

// ---- the alerts view ----

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function authorised(options = {}) {
  const key = apiKey();
  const headers = { ...(options.headers || {}) };
  if (key) headers.Authorization = `Bearer ${key}`;
  return { ...options, headers };
}

function alertError(err) {
  if (err instanceof ApiError && err.status === 401) {
    return apiKey()
      ? "the API key was refused (401): check it and use it again"
      : "an API key is needed (401): type yours above";
  }
  return describe(err);
}

async function loadAlerts() {
  $("#api-key").value = apiKey();
  document.body.dataset.state = "loading";
  try {
    const body = await api("/alerts", authorised());
    drawSubscriptions(body.subscriptions);
    document.body.dataset.state = "drawn";
  } catch (err) {
    document.body.dataset.state = "error";
    drawSubscriptions([]);
    showMessage(alertError(err));
  }
}

function drawSubscriptions(subs) {
  const tbody = $("#subscriptions tbody");
  tbody.replaceChildren();
  if (!subs.length) {
    const tr = tbody.insertRow();
    const td = cell(tr, "No subscriptions.", "muted");
    td.colSpan = 7;
  }
  for (const s of subs) {
    const tr = tbody.insertRow();
    tr.dataset.id = s.id;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = s.webhook || s.email;
    tr.append(th);
    cell(tr, s.pair || "any");
    cell(tr, s.exchange || "any");
    cell(tr, s.metric || "both");
    cell(tr, String(s.factor), "num");
    cell(tr, s.window);
    const actions = tr.insertCell();
    const events = document.createElement("button");
    events.type = "button";
    events.textContent = "Events";
    events.setAttribute("aria-label", `Events of ${th.textContent}`);
    events.addEventListener("click", () => loadEvents(s));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${th.textContent}`);
    remove.addEventListener("click", () => deleteSubscription(s));
    actions.append(events, " ", remove);
  }
}

async function loadEvents(sub) {
  try {
    const body = await api(`/alerts/${encodeURIComponent(sub.id)}/events`, authorised());
    const table = $("#events");
    $("#events-caption").textContent = `Recent alerts of ${sub.webhook || sub.email}`;
    const tbody = table.querySelector("tbody");
    tbody.replaceChildren();
    if (!body.events.length) cell(tbody.insertRow(), "No alert yet.", "muted").colSpan = 7;
    for (const e of body.events) {
      const tr = tbody.insertRow();
      const a = e.alert;
      cell(tr, isoTime(a.time_ms));
      cell(tr, `${a.exchange}/${a.pair}`);
      cell(tr, a.metric);
      cell(tr, `${formatPrice(a.value)} / ${formatPrice(a.mean)}`, "num");
      cell(tr, e.state, e.state);
      cell(tr, String(e.attempts), "num");
      cell(tr, e.last_error || "");
    }
    table.hidden = false;
  } catch (err) {
    showMessage(alertError(err));
  }
}

async function deleteSubscription(sub) {
  try {
    await api(`/alerts/${encodeURIComponent(sub.id)}`, authorised({ method: "DELETE" }));
    $("#events").hidden = true;
    await loadAlerts();
  } catch (err) {
    showMessage(alertError(err));
  }
}

async function createSubscription(event) {
  event.preventDefault();
  const body = { [$("#alert-kind").value]: $("#alert-target").value.trim() };
  for (const field of ["pair", "exchange", "metric", "window"]) {
    const value = $(`#alert-${field}`).value.trim();
    if (value) body[field] = value;
  }
  const factor = $("#alert-factor").value.trim();
  if (factor) body.factor = Number(factor);
  try {
    const sub = await api(
      "/alerts",
      authorised({
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      }),
    );
    const secret = $("#alert-secret");
    secret.textContent = sub.webhook
      ? `Subscribed. The webhook signing secret (shown once): ${sub.secret}`
      : "Subscribed.";
    secret.hidden = false;
    showMessage("");
    await loadAlerts();
  } catch (err) {
    showMessage(alertError(err));
  }
}

// ---- wiring ----

function start() {
  readUrl();
  for (const link of document.querySelectorAll("nav a")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      go({ view: link.dataset.view });
    });
  }
  for (const button of document.querySelectorAll("[data-window]")) {
    button.addEventListener("click", () => go({ window: button.dataset.window }));
  }
  $("#pair-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const pair = $("#pair-input").value.trim().toLowerCase();
    if (pair) go({ pair });
  });
  $("#pair-input").addEventListener("change", () => {
    const pair = $("#pair-input").value.trim().toLowerCase();
    if (pair && pair !== state.pair && state.pairs.includes(pair)) go({ pair });
  });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("#api-key").value.trim());
    loadAlerts();
  });
  $("#key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    loadAlerts();
  });
  $("#alert-form").addEventListener("submit", createSubscription);
  window.addEventListener("popstate", () => {
    readUrl();
    render();
  });
  writeUrl(false);
  // The pair list only feeds the search box's suggestions: asked once the first view is
  // drawn, so it does not compete with the pair's answer on a first load.
  render().then(() => {
    if (!state.pairs.length) loadPairs().catch((err) => showMessage(describe(err)));
  });
}

start();
