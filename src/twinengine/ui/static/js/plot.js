// Plots on a canvas with uPlot (one path per series, not one node per point: 100,000 points draw in
// milliseconds). Several series with their own times are merged on one time axis; thresholds are flat
// lines, an uncertainty band fills between two series, a cursor marks the time the page travelled to, values
// flagged suspect or bad are ringed, and every plot downloads as PNG and CSV.

import { uPlotReady } from "./api.js";
import { csvText, downloadButton, h } from "./dom.js";

const COLORS = ["#1f5f99", "#2e8b57", "#6a3d9a", "#8e44ad", "#d35400", "#16a085", "#7f8c8d", "#b8860b"];

/** ISO 8601 timestamps → seconds since the epoch (what uPlot's time axis takes). */
export function seconds(items, key = "timestamp") {
  const out = new Float64Array(items.length);
  for (let i = 0; i < items.length; i += 1) out[i] = Date.parse(items[i][key]) / 1000;
  return out;
}

function merge(series) {
  if (series.length === 1) return [series[0].x, [series[0].y]];
  const all = new Set();
  for (const s of series) for (const x of s.x) all.add(x);
  const xs = Float64Array.from([...all].sort((a, b) => a - b));
  const ys = series.map((s) => {
    const at = new Map();
    for (let i = 0; i < s.x.length; i += 1) at.set(s.x[i], s.y[i]);
    return Array.from(xs, (x) => (at.has(x) ? at.get(x) : null));
  });
  return [xs, ys];
}

const FLAG_COLORS = { bad: "#a4161a", suspect: "#d97706" };

/** The points of a history whose values are flagged (``quality.flag``): [{x, y, flag}], for ``flags``. */
export function flaggedPoints(items, key = "timestamp") {
  const out = [];
  for (const v of items) {
    const flag = v.quality?.flag || (v._quality && v._quality !== "good" ? v._quality : null);
    if (flag && typeof v.value === "number") out.push({ x: Date.parse(v[key]) / 1000, y: v.value, flag });
  }
  return out;
}

/** "2 bad and 1 suspect values ringed" (empty when none). */
export function flagWords(flags) {
  const n = (f) => flags.filter((p) => p.flag === f).length;
  const parts = [["bad", n("bad")], ["suspect", n("suspect")]].filter(([, k]) => k).map(([f, k]) => `${k} ${f}`);
  return parts.length ? `${parts.join(" and ")} value${flags.length === 1 ? "" : "s"} ringed (quality flags)` : "";
}

function isoOrNumber(x, time) {
  return time ? new Date(x * 1000).toISOString().replace(".000Z", "Z") : x;
}

/** The plot's data as CSV: a time (or x) column and one column per series, as drawn. */
export function plotCsv(plot, time = true) {
  const labels = plot.series.map((s, i) => (i === 0 ? (time ? "time (UTC)" : "x") : String(s.label)));
  const rows = Array.from(plot.data[0], (x, i) => [isoOrNumber(x, time), ...plot.data.slice(1).map((col) => (col[i] === null || col[i] === undefined ? "" : col[i]))]);
  return new Blob([csvText(labels, rows)], { type: "text/csv" });
}

/** What a plot's PNG says beside its lines: whose it is and in which time zone its times are. */
export function pngCaption(caption, time) {
  return [caption, time ? "times in UTC" : ""].filter(Boolean).join(" · ");
}

/** The plot's legend as [label, colour, dashed] for its PNG (the page's legend is HTML, not on the canvas). */
export function legendEntries(plot) {
  return plot.series.slice(1).filter((s) => s.show !== false && s.label).map((s) => [String(s.label),
    typeof s.stroke === "function" ? s.stroke(plot, 1) : s.stroke || "#1c2330", Boolean(s.dash && s.dash.length)]);
}

/** The plot as a PNG that stands on its own: its title, whose it is and the time zone, its canvas on white,
 * and its legend (each series' colour and label) beneath. */
export function plotPng(plot, title, { caption = "", time = true, extra = [] } = {}) {
  const src = plot.ctx.canvas;
  const scale = src.width / Math.max(1, plot.width);  // the canvas is drawn at the screen's pixel ratio
  const line = Math.round(18 * scale);
  const under = pngCaption(caption, time);
  const head = (title ? line + 6 * scale : 0) + (under ? line : 0);
  const out = document.createElement("canvas");
  const ctx = out.getContext("2d");
  const entries = [...legendEntries(plot), ...extra];
  ctx.font = `${Math.round(12 * scale)}px system-ui, sans-serif`;
  const rows = [];  // the legend laid out in rows as wide as the canvas
  let row = []; let width = 0;
  for (const entry of entries) {
    const w = ctx.measureText(entry[0]).width + 40 * scale;
    if (row.length && width + w > src.width - 20 * scale) { rows.push(row); row = []; width = 0; }
    row.push([entry, w]); width += w;
  }
  if (row.length) rows.push(row);
  out.width = src.width;
  out.height = head + src.height + rows.length * line + (rows.length ? 8 * scale : 0);
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.fillStyle = "#1c2330";
  let y = 0;
  if (title) { ctx.font = `bold ${Math.round(16 * scale)}px system-ui, sans-serif`; y += line; ctx.fillText(title, 10 * scale, y); y += 6 * scale; }
  if (under) { ctx.font = `${Math.round(12 * scale)}px system-ui, sans-serif`; ctx.fillStyle = "#4f5b6d"; y += line; ctx.fillText(under, 10 * scale, y - 4 * scale); }
  ctx.drawImage(src, 0, head);
  ctx.font = `${Math.round(12 * scale)}px system-ui, sans-serif`;
  rows.forEach((items, r) => {
    let x = 10 * scale;
    const base = head + src.height + (r + 1) * line;
    for (const [[label, colour, dashed], w] of items) {
      ctx.strokeStyle = colour; ctx.lineWidth = 2 * scale; ctx.setLineDash(dashed ? [6 * scale, 3 * scale] : []);
      ctx.beginPath(); ctx.moveTo(x, base - 5 * scale); ctx.lineTo(x + 22 * scale, base - 5 * scale); ctx.stroke();
      ctx.setLineDash([]); ctx.fillStyle = "#1c2330"; ctx.fillText(label, x + 28 * scale, base);
      x += w;
    }
  });
  out.dataset.legend = JSON.stringify(entries.map(([label]) => label));
  out.dataset.caption = under;
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

/** Draw ``series`` [{label, x, y, dash}] into ``el``; returns {plot, points, ms}. ``flags`` [{x, y, flag}]
 * rings flagged values; the plot comes with PNG and CSV downloads (``download: false`` leaves them out). */
export async function timeSeries(el, { series, thresholds = [], band = null, yLabel = "", cursorAt = null,
  height = 300, time = true, title = "", flags = [], members = null, download = true, caption = null, xLabel = "" }) {
  const uPlot = await uPlotReady();
  const started = performance.now();
  const paper = document.body.classList.contains("print-mode");  // a report fits its page: short plots, the card names them
  if (paper) height = Math.min(height, 150);
  const parts = [...series];
  if (band) parts.push({ ...band.upper, label: `${band.label || "band"} (upper)`, band: true },
    { ...band.lower, label: `${band.label || "band"} (lower)`, band: true });
  const [xs, ys] = merge(parts.filter((s) => s.x.length));
  const points = series.reduce((n, s) => n + s.x.length, 0);
  const data = [xs, ...ys];
  const opts = [];
  let k = 0;
  for (const s of parts.filter((p) => p.x.length)) {
    const color = s.band ? "#7fa7cf" : COLORS[k % COLORS.length];
    if (!s.band) k += 1;
    opts.push({ label: s.label, stroke: color, width: s.band ? 1 : 1.6, dash: s.dash, spanGaps: true,
      points: { show: s.x.length < 60 && !s.band } });
  }
  for (const [i, t] of thresholds.entries()) {
    data.push(new Float64Array(xs.length).fill(t.value));
    opts.push({ label: `${t.label || "threshold"} = ${t.value}`, stroke: "#a4161a", dash: [6, 4], width: 1.5,
      points: { show: false }, value: () => String(t.value) });
    void i;
  }
  const bands = [];
  if (band) {
    const upper = parts.findIndex((p) => p.band) + 1;
    if (upper > 0 && parts[upper]) bands.push({ series: [upper, upper + 1], fill: "rgba(31,95,153,0.15)" });
  }
  const least = paper ? 120 : 280;  // on paper a plot fits its column, however narrow
  const width = Math.max(least, el.clientWidth || el.parentElement?.clientWidth || 600);
  const plot = new uPlot({
    width, height, title: paper ? "" : title, scales: { x: { time }, ...(members ? { y: { range: (u, lo, hi) => {
      let a = lo; let b = hi;
      for (const ys of members.ys) for (const v of ys) if (Number.isFinite(v)) { if (v < a) a = v; if (v > b) b = v; }
      const pad = (b - a) * 0.05 || 0.1;
      return [a - pad, b + pad];
    } } } : {}) }, series: [{ label: time ? "time (UTC)" : "x" }, ...opts], bands,
    axes: [time || xLabel ? { label: time ? "time (UTC)" : xLabel, labelSize: 18 } : {}, { label: yLabel, size: 60 }], legend: { live: !paper }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
    hooks: { draw: [(u) => {
      const { ctx, bbox } = u;
      if (cursorAt !== null) {
        const x = u.valToPos(cursorAt, "x", true);
        if (Number.isFinite(x)) {
          ctx.save(); ctx.strokeStyle = "#f0a202"; ctx.lineWidth = 2; ctx.beginPath();
          ctx.moveTo(x, bbox.top); ctx.lineTo(x, bbox.top + bbox.height); ctx.stroke(); ctx.restore();
        }
      }
      ctx.save();
      if (members) {  // an ensemble's members: thin lines under the band and the mean
        ctx.strokeStyle = "rgba(90,110,140,0.35)"; ctx.lineWidth = 1; ctx.setLineDash([]);
        for (const ys of members.ys) {
          ctx.beginPath();
          let on = false;
          for (let i = 0; i < members.x.length; i += 1) {
            const px = u.valToPos(members.x[i], "x", true); const py = u.valToPos(ys[i], "y", true);
            if (!Number.isFinite(px) || !Number.isFinite(py)) { on = false; continue; }
            if (on) ctx.lineTo(px, py); else { ctx.moveTo(px, py); on = true; }
          }
          ctx.stroke();
        }
      }
      for (const p of flags) {
        const px = u.valToPos(p.x, "x", true); const py = u.valToPos(p.y, "y", true);
        if (!Number.isFinite(px) || !Number.isFinite(py)) continue;
        ctx.strokeStyle = FLAG_COLORS[p.flag] || FLAG_COLORS.suspect; ctx.lineWidth = 2.5; ctx.beginPath();
        ctx.arc(px, py, 6 * (window.devicePixelRatio || 1), 0, 2 * Math.PI); ctx.stroke();
      }
      ctx.restore();
    }] },
  }, data, el);
  const ms = performance.now() - started;
  el.dataset.points = String(points);
  el.dataset.drawMs = ms.toFixed(1);
  const observer = new ResizeObserver(() => {
    const w = Math.max(least, el.clientWidth);
    if (Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  observer.observe(el);
  plot.root.setAttribute("role", "img");
  plot.root.setAttribute("aria-label", `${title || "plot"}: ${series.map((s) => `${s.label} (${s.x.length} points)`).join(", ")}`
    + (flags.length ? `; ${flagWords(flags)}` : ""));
  el.dataset.flags = String(flags.length);
  if (bands.length) el.dataset.band = band.label || "band"; else delete el.dataset.band;
  const tools = download ? h("p", { class: "downloads" },
    downloadButton("Download PNG", title || "plot", () => plotPng(plot, title, { caption: caption ?? pageSubject(), time,
      extra: members ? [[`${members.ys.length} members (thin lines)`, "rgba(90,110,140,0.6)", false]] : [] })),
    downloadButton("Download CSV", title || "plot", () => plotCsv(plot, time))) : null;
  if (tools) el.append(tools);
  return { plot, points, ms, destroy: () => { observer.disconnect(); plot.destroy(); if (tools) tools.remove(); } };
}

/** Whose plot it is when the caller does not say: the page's heading (a twin's name, and its view). */
function pageSubject() {
  return (document.querySelector("main h1")?.textContent || "").trim();
}

/** A figure with a slot for a plot and a line of text about it. */
export function figure(label) {
  const slot = h("div", { class: "plot", "data-label": label });
  const info = h("p", { class: "plot-info" });
  return { el: h("figure", { class: "plot-figure" }, slot, info), slot, info };
}

export function summary(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) if (typeof v === "number" && Number.isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return Number.isFinite(lo) ? { lo, hi } : null;
}
