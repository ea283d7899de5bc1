// The admin dashboard: serving model and runs with their metrics, the evaluation report plots, events ingested
// over time, latency percentiles and a reload button. Uses only the service's public endpoints.

import { enc, esc, fmt, optional, privateKey, request, setPrivateKey } from "./api.js";
import { barChart, hbarChart, percentilesFromPrometheus, timeChart } from "./charts.js";
import { loadAnalytics } from "./analytics.js";
import { loadExperiments } from "./experiments.js";

const LIVE_MINUTES = 60;
const METRIC_COLUMNS = ["hr@10", "ndcg@10", "mrr@10", "recall@10", "coverage@10", "popularity@10"];
// The test period's new-product slice (metrics.json: test.slices.new_items): the shoppers who bought a product no
// one had bought before the cut, and how often the run's top 10 held one of those products (HR) or what share of
// them it found (recall).
const NEW_PRODUCT_COLUMNS = [["hr@10", "new products HR@10"], ["recall@10", "new products recall@10"]];
let runs = [];
let selectedRun = null;

// ---- normalising answers (tolerant of small shape differences) ----------------------------------------------
function baseName(path) {
  return String(path || "").replace(/\/+$/, "").split("/").pop();
}

function splitMetrics(metrics, split) {
  const m = metrics?.[split];
  if (!m) return {};
  return m.metrics ?? m;
}

function splitSlice(metrics, split, name) {
  const slice = metrics?.[split]?.slices?.[name];
  return slice && typeof slice === "object" ? slice : null;
}

function normaliseRuns(answer) {
  const list = Array.isArray(answer) ? answer : answer?.runs ?? answer?.items ?? [];
  const servingName = answer?.serving ?? answer?.current ?? answer?.serving_run ?? null;
  const servingVersion = answer?.model_version ?? null;
  return list.map((r) => {
    const metrics = r.metrics ?? r;
    const name = r.name ?? r.run ?? baseName(r.path);
    const version = r.version ?? r.model_version ?? metrics.version ?? "";
    const plots = (r.plots ?? metrics.plots ?? []).map((p) => {
      const file = typeof p === "string" ? p : p.url ?? p.path ?? p.name;
      const url = /^(\/|https?:)/.test(file) ? file : `/v1/runs/${enc(name)}/plots/${baseName(file)}`;
      return { url, name: typeof p === "object" && p.title ? p.title : baseName(file) };
    });
    const serving = Boolean(r.serving ?? r.active ?? r.current ?? (servingName != null && (name === servingName || baseName(servingName) === name)))
      || (servingVersion != null && version === servingVersion);
    return {
      name, version, serving, plots,
      model: r.model ?? metrics.model ?? "",
      dataset: r.dataset ?? metrics.dataset ?? "",
      protocol: metrics.protocol ?? "",
      trainSeconds: r.train_seconds ?? metrics.train_seconds,
      device: r.device ?? metrics.device ?? "",
      test: splitMetrics(metrics, "test"),
      valid: splitMetrics(metrics, "valid"),
      newProducts: splitSlice(metrics, "test", "new_items"),
      content: metrics.content && typeof metrics.content === "object" ? metrics.content : null,
    };
  });
}

/** One row per run: the served path (e.g. a `current` link) and the run folder it points at are one run. */
function dedupe(list) {
  const byVersion = new Map();
  const out = [];
  for (const run of list) {
    const key = run.version || run.name;
    const seen = byVersion.get(key);
    if (!seen) {
      byVersion.set(key, run);
      out.push(run);
      continue;
    }
    seen.serving = seen.serving || run.serving;
    if (/^(current|latest|serving)$|^\./.test(seen.name) && !/^(current|latest|serving)$|^\./.test(run.name)) {
      seen.name = run.name;
      if (run.plots.length) seen.plots = run.plots;
    }
  }
  return out.sort((a, b) => Number(b.serving) - Number(a.serving));
}

// ---- service tiles ------------------------------------------------------------------------------------------
async function loadHealth() {
  const tiles = document.getElementById("tiles");
  try {
    const health = await request("/health");
    const entries = Object.entries(health).filter(([, v]) => v === null || typeof v !== "object");
    tiles.innerHTML = entries.map(([k, v]) => `<div class="tile" data-key="${esc(k)}">
        <div class="label">${esc(k.replace(/_/g, " "))}</div>
        <div class="value${String(v ?? "").length > 12 ? " long" : ""}">${esc(typeof v === "number" ? v.toLocaleString() : v ?? "–")}</div></div>`).join("");
    tiles.dataset.modelVersion = health.model_version ?? "";
  } catch (err) {
    tiles.innerHTML = `<p class="status error">Service unreachable: ${esc(err.message)}</p>`;
  }
}

// ---- runs table and per-model chart -------------------------------------------------------------------------
async function loadRuns() {
  const wrap = document.querySelector("#runs .table-wrap");
  let answer;
  const missing = keyNeeded("the runs");
  if (missing) {
    wrap.innerHTML = missing;
    return;
  }
  try {
    answer = await optional("/v1/runs", { key: privateKey() });
  } catch (err) {
    wrap.innerHTML = `<p class="status error" style="padding:.6rem">${esc(refusal(err))}</p>`;
    return;
  }
  if (!answer) {
    wrap.innerHTML = `<p class="muted" style="padding:.6rem">This server has no <code>/v1/runs</code> endpoint.</p>`;
    return;
  }
  showDecisions(answer.decisions || []);
  runs = dedupe(normaliseRuns(answer));
  if (!runs.length) {
    wrap.innerHTML = `<p class="muted" style="padding:.6rem">No runs found.</p>`;
    return;
  }
  const cols = METRIC_COLUMNS.filter((c) => runs.some((r) => c in r.test));
  if (!cols.length) cols.push("protocol");
  const sliced = runs.some((r) => r.newProducts) ? NEW_PRODUCT_COLUMNS : [];
  const newCell = (r, m) => {
    const shoppers = r.newProducts?.users;
    const about = shoppers != null ? ` title="over ${Number(shoppers).toLocaleString()} shoppers who bought a new product"` : "";
    return `<td class="new-products"${about}>${fmt(r.newProducts?.[m])}</td>`;
  };
  wrap.innerHTML = `<table>
    <caption class="visually-hidden">Runs and their test metrics</caption>
    <thead><tr><th scope="col">run</th><th scope="col">model</th>${cols.map((c) => `<th scope="col">${esc(c)}</th>`).join("")}
      ${sliced.map(([, label]) => `<th scope="col" class="new-products" title="customers who bought in the test period a product never sold before the cut">${esc(label)}</th>`).join("")}
      <th scope="col">train s</th></tr></thead>
    <tbody>${runs.map((r, i) => `<tr class="${r.serving ? "serving" : ""}" data-run="${esc(r.name)}">
      <td><button type="button" class="secondary" data-index="${i}" aria-label="Show the report of ${esc(r.name)}">${esc(r.name)}</button>
        ${r.serving ? '<span class="reason" data-reason="sequence">serving</span>' : ""}
        <div class="muted run-version">${esc(r.version)}</div></td>
      <td>${esc(r.model)}</td>${cols.map((c) => `<td>${c === "protocol" ? esc(r.protocol) : fmt(r.test[c])}</td>`).join("")}
      ${sliced.map(([m]) => newCell(r, m)).join("")}
      <td>${r.trainSeconds != null ? Number(r.trainSeconds).toFixed(1) : "–"}</td></tr>`).join("")}</tbody>
  </table>`;
  wrap.querySelectorAll("button[data-index]").forEach((b) =>
    b.addEventListener("click", () => showReport(runs[Number(b.dataset.index)])));
  if (!selectedRun || !runs.some((r) => r.name === selectedRun.name)) showReport(runs.find((r) => r.serving) || runs[0]);
}

// ---- retraining decisions (DIR/decisions.jsonl beside the served `current` link) ------------------------------
function showDecisions(decisions) {
  if (!decisions.length) return;
  const ndcg = (m) => (m && m["ndcg@10"] != null ? fmt(m["ndcg@10"]) : "–");
  document.querySelector("#decisions .table-wrap").innerHTML = `<table>
    <caption class="visually-hidden">Retraining decisions, newest first</caption>
    <thead><tr><th scope="col">time</th><th scope="col">action</th><th scope="col">run</th>
      <th scope="col">new NDCG@10</th><th scope="col">serving NDCG@10</th><th scope="col">why</th></tr></thead>
    <tbody>${decisions.slice().reverse().map((d) => `<tr class="${d.promoted ? "serving" : ""}">
      <td>${esc(d.time)}</td><td>${esc(d.action)}</td><td>${esc(d.run)}</td>
      <td>${ndcg(d.new_metrics)}</td><td>${ndcg(d.serving_metrics)}</td><td>${esc(d.reason)}</td></tr>`).join("")}</tbody>
  </table>`;
}

function showReport(run) {
  selectedRun = run;
  document.getElementById("report-run").textContent = `${run.name}${run.serving ? " (serving)" : ""} · ${run.dataset} · ${run.protocol}`;
  const plots = document.getElementById("plots");
  const compare = runs.length > 1 ? `<figure id="per-model">${barChart({
    title: "Metrics per model (test)",
    labels: runs.map((r) => r.name),
    series: ["hr@10", "ndcg@10", "coverage@10"].map((m) => ({ name: m, values: runs.map((r) => Number(r.test[m])) })),
  })}<figcaption>Full ranking over all products, purchased-before excluded.</figcaption></figure>` : "";
  plots.innerHTML = compare + contentFigure(run) + run.plots.map((p) => `<figure>
      <img data-src="${esc(p.url)}" alt="${esc(p.name.replace(/[_-]/g, " ").replace(/\.png$/, ""))} for ${esc(run.name)}" loading="lazy">
      <figcaption>${esc(p.name)}</figcaption></figure>`).join("")
    || (compare ? "" : `<p class="muted">This run has no plots.</p>`);
  plots.querySelectorAll("img[data-src]").forEach(showPlot);
}

/** A run's plot needs the private key: an <img src> sends no header, so it is fetched and shown from memory. */
async function showPlot(img) {
  try {
    const response = await fetch(img.dataset.src, { headers: { "X-API-Key": privateKey() } });
    if (response.ok) img.src = URL.createObjectURL(await response.blob());
  } catch {
    /* the figure keeps its caption */
  }
}

/** What a private call needs: the key, or a line saying to enter it (null when it is there). */
function keyNeeded(what) {
  return privateKey() ? null : `<p class="muted">Enter a private API key above to see ${esc(what)}.</p>`;
}

function refusal(err) {
  return err.status === 401 || err.status === 403
    ? `Refused: this needs a valid private API key (${err.status}).` : err.message;
}

/** Content model quality: attribute precision of held-out products' neighbours, per similarity mode. */
function contentFigure(run) {
  const c = run.content;
  const modes = c ? Object.keys(c).filter((m) => c[m] && typeof c[m] === "object" && !Array.isArray(c[m])) : [];
  const attrs = c && Array.isArray(c.attributes) ? c.attributes : [];
  if (!modes.length || !attrs.length) return "";
  return `<figure id="content-quality">${barChart({
    title: `Content: attribute P@${c.k ?? 10} of held-out products' neighbours`,
    labels: modes.map((m) => m.replace(/_/g, " ")),
    series: attrs.map((a) => ({ name: a, values: modes.map((m) => Number(c[m][a])) })),
  })}<figcaption>${esc(Number(c.heldout_items ?? 0).toLocaleString())} held-out products, never seen by a learned head.</figcaption></figure>`;
}

// ---- traffic: events over time and latency ------------------------------------------------------------------
async function loadEvents() {
  const fig = document.getElementById("events-figure");
  const missing = keyNeeded("the events ingested");
  if (missing) {
    fig.innerHTML = missing;
    return;
  }
  try {
    const answer = await optional(`/v1/stats/events?bucket=minute&days=${LIVE_MINUTES / 1440}`, { key: privateKey() });
    if (!answer) {
      fig.innerHTML = `<p class="muted">No <code>/v1/stats/events</code> on this server.</p>`;
      return;
    }
    const rows = answer.buckets ?? answer.series ?? answer.items ?? (Array.isArray(answer) ? answer : []);
    const byStart = new Map();
    for (const row of rows) {
      const raw = Array.isArray(row) ? row[0] : row.start ?? row.t ?? row.time ?? row.bucket ?? row.ts;
      const count = Number(Array.isArray(row) ? row[row.length - 1] : row.count ?? row.events ?? row.n ?? 0);
      const t = typeof raw === "number" ? new Date(raw < 1e12 ? raw * 1000 : raw) : new Date(raw);
      const key = t.getTime();
      byStart.set(key, (byStart.get(key) || 0) + count);
    }
    // One column per minute of the last hour, zeros included, so quiet minutes show as quiet.
    const minute = 60000;
    const end = Math.floor(Date.now() / minute) * minute;
    const points = [];
    for (let t = end - (LIVE_MINUTES - 1) * minute; t <= end; t += minute) {
      points.push({ t: new Date(t), v: byStart.get(t) || 0, label: new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) });
    }
    const total = answer.total ?? answer.total_events ?? points.reduce((s, p) => s + p.v, 0);
    const recent = points.reduce((sum, p) => sum + p.v, 0);
    fig.innerHTML = `${timeChart({ points, title: `Events ingested, last ${LIVE_MINUTES} minutes`, yLabel: "events per minute" })}
        <figcaption>${esc(recent.toLocaleString())} events in the last hour; ${esc(Number(total).toLocaleString())} in the store
        (the shop's history included).</figcaption>`;
    fig.dataset.total = String(total);
  } catch (err) {
    fig.innerHTML = `<p class="status error">${esc(refusal(err))}</p>`;
  }
}

function latencyRows(answer) {
  const list = Array.isArray(answer) ? answer : answer.routes ?? answer.items ?? answer.latency ?? null;
  const entries = list ?? Object.entries(answer).filter(([, v]) => v && typeof v === "object").map(([route, v]) => ({ route, ...v }));
  return entries.map((r) => {
    const ms = (key) => (r[`${key}_ms`] != null ? Number(r[`${key}_ms`]) : r[`${key}_s`] != null ? Number(r[`${key}_s`]) * 1000
      : r[key] != null ? Number(r[key]) * (answer.unit === "ms" ? 1 : 1000) : NaN);
    return { route: `${r.method ? `${r.method} ` : ""}${r.route ?? r.path ?? r.name}`, count: r.count ?? r.requests ?? 0,
      p50: ms("p50"), p95: ms("p95"), p99: ms("p99") };
  });
}

async function loadLatency() {
  const fig = document.getElementById("latency-figure");
  const table = document.getElementById("latency-table");
  let rows = [];
  let source = "";
  const missing = keyNeeded("the latency per route");
  if (missing) {
    fig.innerHTML = missing;
    table.innerHTML = "";
    return;
  }
  try {
    const answer = await optional("/v1/stats/latency", { key: privateKey() });
    if (answer) {
      rows = latencyRows(answer);
      source = "/v1/stats/latency";
    } else {
      const response = await fetch("/metrics", { headers: { "X-API-Key": privateKey() } });
      if (response.ok) {
        rows = percentilesFromPrometheus(await response.text()).map((r) => ({ ...r, p50: r.p50 * 1000, p95: r.p95 * 1000, p99: r.p99 * 1000 }));
        source = "/metrics histograms";
      }
    }
  } catch (err) {
    fig.innerHTML = `<p class="status error">${esc(refusal(err))}</p>`;
    return;
  }
  rows = rows.filter((r) => r.count > 0 && isApiRoute(r.route)).sort((a, b) => b.count - a.count);
  // the chart keeps to the 8 busiest routes, plus the recommendation routes however few calls they had (a busy
  // event stream must not push out what the dashboard is for); the table lists every route
  const charted = rows.filter((r, i) => i < 8 || /recommendations/.test(r.route));
  if (!rows.length) {
    fig.innerHTML = `<p class="muted">No API requests timed yet.</p>`;
    table.innerHTML = "";
    return;
  }
  fig.innerHTML = `${hbarChart({
    title: "Latency per route",
    unit: "ms",
    labels: charted.map((r) => shortRoute(r.route)),
    series: [{ name: "p50", values: charted.map((r) => r.p50) }, { name: "p95", values: charted.map((r) => r.p95) },
      { name: "p99", values: charted.map((r) => r.p99) }],
  })}<figcaption>From ${esc(source)} (the service's own timings, since it started).</figcaption>`;
  table.innerHTML = `<table><caption class="visually-hidden">Latency percentiles per route</caption>
    <thead><tr><th scope="col">route</th><th scope="col">requests</th><th scope="col">p50 ms</th><th scope="col">p95 ms</th><th scope="col">p99 ms</th></tr></thead>
    <tbody>${rows.map((r) => `<tr><td>${esc(r.route)}</td><td>${Number(r.count).toLocaleString()}</td>
      <td>${fmt(r.p50, 2)}</td><td>${fmt(r.p95, 2)}</td><td>${fmt(r.p99, 2)}</td></tr>`).join("")}</tbody></table>`;
}

/** A route of the API a shop calls: not the pages and files (static, admin, health, metrics), not CORS
 * preflights (OPTIONS) or HEAD probes, not requests that matched no route ("GET unmatched": scanners, typos). */
function isApiRoute(route) {
  if (/^(OPTIONS|HEAD) /.test(route) || / unmatched$/.test(route) || route === "GET /") return false;
  return !/^([A-Z]+ )?\/(static|metrics|health|admin|favicon)/.test(route);
}

function shortRoute(route) {
  return route.replace("/v1/", "/").replace(/\{(\w)\w*\}/g, "{$1}").slice(0, 30);
}

// ---- the private key and reload ----------------------------------------------------------------------------
// The key is typed here and kept for this tab only (sessionStorage): never in the URL, never in the page.
function wireKey() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("admin-key");
  const status = document.getElementById("key-status");
  input.value = privateKey();
  status.textContent = privateKey() ? "Key set for this tab." : "";
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    setPrivateKey(input.value.trim());
    status.textContent = privateKey() ? "Key set for this tab." : "Key cleared.";
    await Promise.all([loadRuns(), refreshTraffic(), loadAnalytics(), loadExperiments()]);
  });
}

function wireReload() {
  const form = document.getElementById("reload-form");
  const status = document.getElementById("reload-status");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const button = document.getElementById("reload");
    button.disabled = true;
    status.classList.remove("error");
    status.textContent = "Reloading…";
    try {
      const answer = await request("/v1/admin/reload", { method: "POST", key: privateKey() });
      status.textContent = `Reloaded: serving ${answer?.model_version ?? answer?.version ?? "the run"}${answer?.changed === false ? " (unchanged)" : ""}.`;
      await Promise.all([loadHealth(), loadRuns()]);
    } catch (err) {
      status.classList.add("error");
      status.textContent = refusal(err);
    } finally {
      button.disabled = false;
    }
  });
}

async function refreshTraffic() {
  await Promise.all([loadEvents(), loadLatency()]);
  document.getElementById("traffic").dataset.loaded = String(Date.now());
}

wireKey();
wireReload();
Promise.all([loadHealth(), loadRuns(), refreshTraffic(), loadAnalytics(), loadExperiments()])
  .then(() => (document.body.dataset.ready = "true"));
setInterval(() => {
  if (!document.hidden) Promise.all([loadAnalytics(), loadExperiments()]);
}, 60000);
setInterval(() => {
  if (!document.hidden) Promise.all([loadHealth(), refreshTraffic()]);
}, 5000);
