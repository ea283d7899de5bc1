// The dashboard's "Recommendations" section: what the lists shown earned, from GET /v1/analytics/recommendations
// (private key): CTR and revenue per 1,000 impressions per day with their 95% intervals, the share of new products
// among the items shown and clicked, and a table by placement, variant and model version.

import { esc, optional, privateKey } from "./api.js";
import { timeChart } from "./charts.js";

const DAYS = 14;
const pct = (v) => (v == null ? "–" : `${(100 * v).toFixed(2)}%`);
const count = (v) => Number(v ?? 0).toLocaleString();
const money = (v) => (v == null ? "–" : Number(v).toFixed(2));

function interval(low, high, show) {
  return low == null ? "" : ` <small class="muted">[${show(low)} – ${show(high)}]</small>`;
}

/** The new-product share of impression slots and of clicked items (`new_products` of the answer), in words. */
function newProducts(n) {
  const unknown = n.unknown_impressions
    ? ` ${count(n.unknown_impressions)} lists shown before this was recorded are left out.` : "";
  return `<p id="new-products">
    New products: ${pct(n.impression_share)} of the items shown (${count(n.new_items_shown)} of ${count(n.items_shown)})
    and ${pct(n.click_share)} of the items clicked (${count(n.new_items_clicked)} of ${count(n.items_clicked)}).
    <small class="muted">New: never sold, or only lately, when the serving run was trained, or added since.${esc(unknown)}</small></p>`;
}

/** One column per day of the range, zeros included (the table below gives the intervals). */
function daily(series, value) {
  const byDay = new Map(series.map((b) => [new Date(b.start).getTime(), b]));
  const day = 86400000;
  const end = Math.floor(Date.now() / day) * day;
  const points = [];
  for (let t = end - (DAYS - 1) * day; t <= end; t += day) {
    const b = byDay.get(t);
    points.push({ t: new Date(t), v: b ? Number(b[value]) : 0,
                  label: new Date(t).toLocaleDateString([], { month: "short", day: "numeric" }) });
  }
  return points;
}

export async function loadAnalytics() {
  const section = document.getElementById("analytics");
  if (!section) return;
  const body = section.querySelector(".analytics-body");
  if (!privateKey()) {
    body.innerHTML = `<p class="muted">Enter a private API key above to see what the recommendations earned.</p>`;
    return;
  }
  try {
    const from = Math.floor(Date.now() / 1000 - DAYS * 86400);
    const answer = await optional(`/v1/analytics/recommendations?bucket=day&from=${from}`, { key: privateKey() });
    if (!answer) {
      body.innerHTML = `<p class="muted">No <code>/v1/analytics/recommendations</code> on this server.</p>`;
      return;
    }
    const t = answer.total;
    const ctr = daily(answer.series, "ctr").map((p) => ({ ...p, v: 100 * p.v }));
    const rpm = daily(answer.series, "revenue_per_1000");
    const rows = answer.groups.map((g) => `<tr><td>${esc(g.placement)}</td><td>${esc(g.variant ?? "–")}</td>
        <td class="version">${esc(g.model_version ?? "–")}</td><td class="num">${count(g.impressions)}</td><td class="num clicks">${count(g.clicks)}</td>
        <td class="num">${pct(g.ctr)}${interval(g.ctr_low, g.ctr_high, pct)}</td>
        <td class="num">${pct(g.add_to_cart_rate)}</td><td class="num conversions">${count(g.conversions)}</td>
        <td class="num revenue">${money(g.revenue)}</td>
        <td class="num">${money(g.revenue_per_1000)}${interval(g.revenue_per_1000_low, g.revenue_per_1000_high, money)}</td></tr>`);
    body.innerHTML = `<p>${count(t.impressions)} lists shown in the last ${DAYS} days; CTR ${pct(t.ctr)}${interval(t.ctr_low, t.ctr_high, pct)},
        ${count(t.conversions)} converted, revenue ${money(t.revenue)} (a purchase counts when it follows a click on the same item
        by the same shopper within ${Math.round(answer.attribution_window_s / 3600)} h).</p>
      ${newProducts(t.new_products)}
      <div class="plots">
        <figure id="ctr-figure">${timeChart({ points: ctr, title: `Click-through rate per day, last ${DAYS} days`, yLabel: "CTR %" })}
          <figcaption>Lists clicked / lists shown; the table gives 95% Wilson intervals.</figcaption></figure>
        <figure id="rpm-figure">${timeChart({ points: rpm, title: "Revenue per 1,000 impressions per day", yLabel: "revenue" })}
          <figcaption>Attributed revenue per 1,000 lists shown.</figcaption></figure>
      </div>
      <div class="table-wrap" style="margin-top:.8rem"><table><thead><tr><th>placement</th><th>variant</th><th>model version</th>
        <th class="num">impressions</th><th class="num">clicks</th><th class="num">CTR [95%]</th><th class="num">add to cart</th>
        <th class="num">conversions</th><th class="num">revenue</th><th class="num">per 1,000 [95%]</th></tr></thead>
        <tbody>${rows.join("") || `<tr><td colspan="10" class="muted">No lists shown in this period.</td></tr>`}</tbody></table></div>`;
    section.dataset.loaded = String(Date.now());
  } catch (err) {
    body.innerHTML = `<p class="status error">${esc(err.status === 401 || err.status === 403
      ? `Refused: this needs a valid private API key (${err.status}).` : err.message)}</p>`;
  }
}
