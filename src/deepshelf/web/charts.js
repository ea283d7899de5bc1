// Tiny SVG charts for the dashboard (no charting library: there is no CDN, and these are enough).

import { esc } from "./api.js";

export const PALETTE = ["#3b6ea5", "#c9733a", "#4f9a6b", "#8a5aa8", "#b8434f", "#6b7f8e"];

function niceMax(value) {
  if (!(value > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * exp >= value) return step * exp;
  return 10 * exp;
}

const CHAR_PX = 6.4; // the width of an average character at font-size 11 (system-ui), for fitting labels

/** `text` cut to fit `px` pixels at font-size 11, with an ellipsis; the whole text goes in a <title>. */
function fitted(text, px) {
  const s = String(text);
  const n = Math.max(3, Math.floor(px / CHAR_PX));
  return s.length <= n ? esc(s) : `${esc(s.slice(0, n - 1))}…<title>${esc(s)}</title>`;
}

function tickText(v) {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000) return `${+(v / 1000).toFixed(1)}k`;
  if (Math.abs(v) < 0.01) return v.toExponential(0);
  return String(+v.toFixed(3));
}

/**
 * Grouped bar chart. labels: group names; series: [{name, values}] (one value per label).
 * Returns an SVG element string with a <title> and a legend.
 */
/** Five horizontal grid lines with their value labels, from 0 to `max`. */
function yGrid(pad, width, innerH, max) {
  const parts = [];
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    const y = pad.top + innerH - (v / max) * innerH;
    parts.push(`<line x1="${pad.left}" x2="${width - pad.right}" y1="${y}" y2="${y}" stroke="#e3e6eb"/>`);
    parts.push(`<text x="${pad.left - 6}" y="${y + 4}" font-size="11" text-anchor="end" fill="#5b6575">${tickText(v)}</text>`);
  }
  return parts;
}

export function barChart({ labels, series, title, yLabel = "", width = 560, height = 280 }) {
  const pad = { left: 48, right: 12, top: 28, bottom: 58 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter(Number.isFinite))));
  const groupW = innerW / Math.max(labels.length, 1);
  const barW = Math.max(3, (groupW * 0.8) / Math.max(series.length, 1));
  const parts = yGrid(pad, width, innerH, max);
  labels.forEach((label, g) => {
    const x0 = pad.left + g * groupW + groupW * 0.1;
    series.forEach((s, i) => {
      const v = s.values[g];
      if (!Number.isFinite(v)) return;
      const h = (v / max) * innerH;
      const x = x0 + i * barW;
      parts.push(`<rect x="${x.toFixed(1)}" y="${(pad.top + innerH - h).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${h.toFixed(1)}"
        fill="${s.color || PALETTE[i % PALETTE.length]}"><title>${esc(label)} · ${esc(s.name)}: ${tickText(v)}</title></rect>`);
    });
    const cx = pad.left + g * groupW + groupW / 2;
    parts.push(`<text x="${cx}" y="${pad.top + innerH + 16}" font-size="11" text-anchor="middle" fill="#1d2430">${fitted(label, groupW - 4)}</text>`);
  });
  const slot = Math.min(120, (width - pad.left - pad.right) / Math.max(series.length, 1));
  const legend = series.map((s, i) => {
    const x = pad.left + i * slot;
    return `<rect x="${x}" y="${height - 18}" width="10" height="10" fill="${s.color || PALETTE[i % PALETTE.length]}"/>
      <text x="${x + 14}" y="${height - 9}" font-size="11" fill="#1d2430">${fitted(s.name, slot - 18)}</text>`;
  });
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">
    <title>${esc(title)}</title>
    <text x="${pad.left}" y="16" font-size="13" font-weight="600" fill="#1d2430">${esc(title)}</text>
    ${yLabel ? `<text x="12" y="${pad.top + innerH / 2}" font-size="11" fill="#5b6575" transform="rotate(-90 12 ${pad.top + innerH / 2})" text-anchor="middle">${esc(yLabel)}</text>` : ""}
    ${parts.join("")}<line x1="${pad.left}" x2="${width - pad.right}" y1="${pad.top + innerH}" y2="${pad.top + innerH}" stroke="#9aa3ae"/>
    ${legend.join("")}</svg>`;
}

/** Time series as columns: points = [{t: Date, v: number}], oldest first. */
export function timeChart({ points, title, yLabel = "", width = 560, height = 240 }) {
  const pad = { left: 48, right: 12, top: 28, bottom: 36 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => p.v)));
  const w = innerW / Math.max(points.length, 1);
  const parts = yGrid(pad, width, innerH, max);
  points.forEach((p, i) => {
    const h = (p.v / max) * innerH;
    parts.push(`<rect x="${(pad.left + i * w + w * 0.1).toFixed(1)}" y="${(pad.top + innerH - h).toFixed(1)}"
      width="${Math.max(1, w * 0.8).toFixed(1)}" height="${h.toFixed(1)}" fill="#3b6ea5"><title>${esc(p.label || p.t.toISOString())}: ${p.v}</title></rect>`);
  });
  const ticks = points.length ? [0, Math.floor((points.length - 1) / 2), points.length - 1] : [];
  [...new Set(ticks)].forEach((i, n, all) => {
    const label = points[i].label || points[i].t.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
    // the first label starts at the axis and the last ends at the chart's edge: centred, they ran off it
    const first = n === 0 && all.length > 1;
    const last = n === all.length - 1 && all.length > 1;
    const x = first ? pad.left : last ? width - pad.right : pad.left + i * w + w / 2;
    const anchor = first ? "start" : last ? "end" : "middle";
    parts.push(`<text x="${x}" y="${height - 14}" font-size="11" text-anchor="${anchor}" fill="#5b6575">${fitted(label, innerW / 3 - 6)}</text>`);
  });
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">
    <title>${esc(title)}</title>
    <text x="${pad.left}" y="16" font-size="13" font-weight="600" fill="#1d2430">${esc(title)}</text>
    ${yLabel ? `<text x="12" y="${pad.top + innerH / 2}" font-size="11" fill="#5b6575" transform="rotate(-90 12 ${pad.top + innerH / 2})" text-anchor="middle">${esc(yLabel)}</text>` : ""}
    ${parts.join("")}<line x1="${pad.left}" x2="${width - pad.right}" y1="${pad.top + innerH}" y2="${pad.top + innerH}" stroke="#9aa3ae"/></svg>`;
}

/**
 * Latency percentiles per route from Prometheus histogram text (the service's own /metrics):
 * returns [{route, count, p50, p95, p99}] in seconds, linearly interpolated inside buckets as Prometheus does.
 */
export function percentilesFromPrometheus(text, metricPrefix = "") {
  const buckets = new Map(); // key -> {labels, le: [[bound, cumulative]]}
  const re = /^([a-zA-Z_:][\w:]*)_bucket\{([^}]*)\}\s+([0-9.eE+-]+|NaN|\+Inf)/;
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m || (metricPrefix && !m[1].startsWith(metricPrefix)) || !/(latency|duration)/.test(m[1])) continue;
    const labels = Object.fromEntries([...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
    delete labels.le;
    const key = `${m[1]}|${JSON.stringify(labels)}`;
    if (!buckets.has(key)) buckets.set(key, { metric: m[1], labels, le: [] });
    buckets.get(key).le.push([le, Number(m[3])]);
  }
  const rows = [];
  for (const { metric, labels, le } of buckets.values()) {
    le.sort((a, b) => a[0] - b[0]);
    const count = le.length ? le[le.length - 1][1] : 0;
    if (!count) continue;
    const quantile = (q) => {
      const rank = q * count;
      let prevBound = 0;
      let prevCount = 0;
      for (const [bound, cum] of le) {
        if (cum >= rank) {
          if (!Number.isFinite(bound)) return prevBound;
          return prevBound + (bound - prevBound) * ((rank - prevCount) / Math.max(cum - prevCount, 1e-12));
        }
        prevBound = bound;
        prevCount = cum;
      }
      return prevBound;
    };
    const route = labels.route || labels.path || labels.handler || labels.endpoint || metric;
    const method = labels.method ? `${labels.method} ` : "";
    rows.push({ route: `${method}${route}`, count, p50: quantile(0.5), p95: quantile(0.95), p99: quantile(0.99) });
  }
  return rows.sort((a, b) => b.count - a.count);
}

/** Horizontal grouped bars, one row per label (long labels such as routes stay readable at any width). */
export function hbarChart({ labels, series, title, unit = "", width = 560 }) {
  const rowH = 10 * series.length + 12;
  const pad = { left: 170, right: 46, top: 28, bottom: 26 };
  const height = pad.top + pad.bottom + rowH * labels.length;
  const innerW = width - pad.left - pad.right;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values.filter(Number.isFinite))));
  const parts = [];
  for (let t = 0; t <= 4; t++) {
    const v = (max * t) / 4;
    const x = pad.left + (v / max) * innerW;
    parts.push(`<line x1="${x}" x2="${x}" y1="${pad.top - 4}" y2="${height - pad.bottom}" stroke="#e3e6eb"/>`);
    parts.push(`<text x="${x}" y="${height - pad.bottom + 14}" font-size="11" text-anchor="middle" fill="#5b6575">${tickText(v)}${t === 4 ? ` ${esc(unit)}` : ""}</text>`);
  }
  labels.forEach((label, r) => {
    const y0 = pad.top + r * rowH;
    parts.push(`<text x="${pad.left - 6}" y="${y0 + rowH / 2 + 2}" font-size="11" text-anchor="end" fill="#1d2430">${fitted(label, pad.left - 10)}</text>`);
    series.forEach((s, i) => {
      const v = s.values[r];
      if (!Number.isFinite(v)) return;
      const w = Math.max(1, (v / max) * innerW);
      parts.push(`<rect x="${pad.left}" y="${y0 + 4 + i * 10}" width="${w.toFixed(1)}" height="9" fill="${s.color || PALETTE[i % PALETTE.length]}">
        <title>${esc(label)} · ${esc(s.name)}: ${tickText(v)} ${esc(unit)}</title></rect>`);
    });
  });
  const legend = series.map((s, i) => `<rect x="${pad.left + i * 70}" y="8" width="10" height="10" fill="${s.color || PALETTE[i % PALETTE.length]}"/>
      <text x="${pad.left + i * 70 + 14}" y="17" font-size="11" fill="#1d2430">${esc(s.name)}</text>`);
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(title)}" xmlns="http://www.w3.org/2000/svg">
    <title>${esc(title)}</title>
    <text x="4" y="17" font-size="13" font-weight="600" fill="#1d2430">${esc(title)}</text>
    ${legend.join("")}${parts.join("")}</svg>`;
}
