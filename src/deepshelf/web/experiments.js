// The dashboard's "Experiments" section: every experiment's variants with their numbers and the verdict the
// service computes (GET /v1/experiments, private key; the statistics are engine/verdict.py's, README
// "Experiments"). The page computes nothing of its own: it shows what the API answers.

import { esc, optional, privateKey } from "./api.js";

const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(2)}%`);
const count = (v) => Number(v ?? 0).toLocaleString();
const money = (v) => (v == null ? "–" : Number(v).toFixed(2));

/** The verdict in words: the winner (or that there is none yet) and how it was decided. */
function verdictText(v) {
  const decided = v.winner ? `Winner: <strong>${esc(v.winner)}</strong>` : "No winner yet";
  let evidence = "";
  if (v.p_value != null) evidence = `p = ${Number(v.p_value).toPrecision(3)}`;
  if (v.probability_best) {
    evidence = "probability best: " + Object.entries(v.probability_best)
      .map(([name, p]) => `${esc(name)} ${(100 * p).toFixed(1)}%`).join(", ");
  }
  return `${decided} <small class="muted">(${esc(v.method)}${evidence ? `; ${evidence}` : ""})</small>`;
}

function experimentHtml(e) {
  const state = e.active ? (e.served_here ? "running" : "running (not served by this server: see its log)") : "stopped";
  const rows = e.variants.map((v) => `<tr data-variant="${esc(v.name)}"${e.verdict.winner === v.name ? ' class="serving"' : ""}>
      <td>${esc(v.name)}</td><td>${esc(v.run)}</td><td class="num">${pct(v.share)}</td>
      <td class="num">${e.active ? pct(v.traffic_share) : "–"}</td><td class="num impressions">${count(v.impressions)}</td>
      <td class="num clicks">${count(v.clicks)}</td>
      <td class="num">${pct(v.ctr)} <small class="muted interval">[${pct(v.ctr_low)} – ${pct(v.ctr_high)}]</small></td>
      <td class="num">${count(v.conversions)}</td><td class="num">${money(v.revenue)}</td></tr>`).join("");
  return `<article class="experiment" data-name="${esc(e.name)}">
    <h3>${esc(e.name)} <small class="muted">placement ${esc(e.placement)} · ${esc(e.allocation)} allocation · ${esc(state)}</small></h3>
    <p class="verdict">${verdictText(e.verdict)}</p>
    <div class="table-wrap"><table><caption class="visually-hidden">Variants of ${esc(e.name)}</caption>
      <thead><tr><th scope="col">variant</th><th scope="col">run</th><th scope="col" class="num">share</th>
        <th scope="col" class="num">traffic now</th><th scope="col" class="num">impressions</th><th scope="col" class="num">clicks</th>
        <th scope="col" class="num">CTR [95%]</th><th scope="col" class="num">conversions</th><th scope="col" class="num">revenue</th></tr></thead>
      <tbody>${rows}</tbody></table></div></article>`;
}

export async function loadExperiments() {
  const section = document.getElementById("experiments");
  if (!section) return;
  const body = section.querySelector(".experiments-body");
  if (!privateKey()) {
    body.innerHTML = `<p class="muted">Enter a private API key above to see the experiments.</p>`;
    return;
  }
  try {
    const answer = await optional("/v1/experiments", { key: privateKey() });
    if (!answer) {
      body.innerHTML = `<p class="muted">No <code>/v1/experiments</code> on this server.</p>`;
      return;
    }
    const list = answer.experiments || [];
    body.innerHTML = list.length ? list.map(experimentHtml).join("")
      : `<p class="muted">No experiments. Define one with <code>PUT /v1/experiments/{name}</code> (README, "Experiments").</p>`;
    section.dataset.loaded = String(Date.now());
  } catch (err) {
    body.innerHTML = `<p class="status error">${esc(err.status === 401 || err.status === 403
      ? `Refused: this needs a valid private API key (${err.status}).` : err.message)}</p>`;
  }
}
